#include "worker/models/liger_kernels.h"

#include <torch/torch.h>

namespace trainerd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// rotate_half and its transpose: [x1, x2] -> [-x2, x1], and [y1, y2] -> [y2, -y1].
torch::Tensor RotateHalf(const torch::Tensor& x, bool transpose) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor first = x.narrow(-1, 0, half), second = x.narrow(-1, half, half);
  return transpose ? torch::cat({second, -first}, -1) : torch::cat({-second, first}, -1);
}

// The loss summed over the rows whose target is not -100, given each row's logsumexp:
// (1 - eps) (lse - logit[target]) + eps (lse - mean(logits)), as torch's cross_entropy
// with label smoothing.
torch::Tensor LossSum(const torch::Tensor& logits, const torch::Tensor& lse, const torch::Tensor& targets, double eps) {
  torch::Tensor loss = (lse - logits.gather(1, targets.clamp_min(0).unsqueeze(1)).squeeze(1)) * (1.0 - eps);
  if (eps > 0) loss += (lse - logits.mean(1)) * eps;
  return (loss * targets.ne(-100).to(loss.dtype())).sum();
}

// LossSum, and `logits` (float [N, V], owned by the caller) turned into d(loss)/d(logits)
// in place: softmax - (1 - eps) onehot - eps / V, zero on ignored rows.
torch::Tensor LossAndGradientInPlace(torch::Tensor& logits, const torch::Tensor& targets, double eps) {
  const torch::Tensor lse = logits.logsumexp(1);
  torch::Tensor loss = LossSum(logits, lse, targets, eps);
  logits.sub_(lse.unsqueeze(1)).exp_();
  logits.scatter_add_(1, targets.clamp_min(0).unsqueeze(1),
                      torch::full({logits.size(0), 1}, -(1.0 - eps), logits.options()));
  if (eps > 0) logits.sub_(eps / static_cast<double>(logits.size(1)));
  logits.mul_(targets.ne(-100).unsqueeze(1).to(logits.dtype()));
  return loss;
}

// The loss alone, leaving `logits` untouched (no gradient wanted).
torch::Tensor LossOnly(const torch::Tensor& logits, const torch::Tensor& targets, double eps) {
  return LossSum(logits, logits.logsumexp(1), targets, eps);
}

// A saved gradient times the incoming scalar gradient (skipped when it is 1, the usual
// case, to avoid another full-size tensor).
torch::Tensor Scaled(const torch::Tensor& saved, const torch::Tensor& grad_output, c10::ScalarType dtype) {
  torch::Tensor out = grad_output.ne(1).item<bool>() ? saved * grad_output.to(saved.dtype()) : saved;
  return out.to(dtype);
}

// Llama's casting: normalised in float32, cast back to x's dtype, then scaled (the same
// as the plain ops in float32).
class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight, double eps) {
    const torch::Tensor xf = x.to(torch::kFloat);
    torch::Tensor rstd = torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
    ctx->save_for_backward({x, rstd, weight});
    return (xf * rstd).to(x.scalar_type()) * weight;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    variable_list saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &rstd = saved[1], &weight = saved[2];
    const torch::Tensor dy = grad_outputs[0].to(torch::kFloat);
    torch::Tensor normed = x.to(torch::kFloat) * rstd;
    torch::Tensor dnormed = dy * weight.to(torch::kFloat);
    torch::Tensor dweight = (dy * normed.to(x.scalar_type()).to(torch::kFloat)).reshape({-1, x.size(-1)}).sum(0);
    torch::Tensor dx = rstd * (dnormed - normed * (dnormed * normed).mean(-1, /*keepdim=*/true));
    return {dx.to(x.scalar_type()), dweight.to(weight.scalar_type()), torch::Tensor()};
  }
};

class RopeFunction : public torch::autograd::Function<RopeFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return x * cos + RotateHalf(x, false) * sin;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& dy = grad_outputs[0];
    return {dy * saved[0] + RotateHalf(dy * saved[1], true), torch::Tensor(), torch::Tensor()};
  }
};

class SwiGluFunction : public torch::autograd::Function<SwiGluFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gate, const torch::Tensor& up) {
    ctx->save_for_backward({gate, up});
    return torch::silu(gate) * up;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    variable_list saved = ctx->get_saved_variables();
    const torch::Tensor &gate = saved[0], &up = saved[1], &dy = grad_outputs[0];
    torch::Tensor sig = torch::sigmoid(gate);
    torch::Tensor silu = gate * sig;
    torch::Tensor dgate = dy * up * sig * (1 + gate * (1 - sig));
    return {dgate, dy * silu};
  }
};

class CrossEntropyFunction : public torch::autograd::Function<CrossEntropyFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& logits, const torch::Tensor& targets,
                               double eps) {
    ctx->saved_data["dtype"] = static_cast<int64_t>(logits.scalar_type());
    if (!logits.requires_grad()) return LossOnly(logits.to(torch::kFloat), targets, eps);
    // variable_data() shares the storage but not the version counter: autograd does not
    // see the gradient overwrite the logits, which nothing else may read any more.
    torch::Tensor work = logits.scalar_type() == torch::kFloat ? logits.variable_data() : logits.to(torch::kFloat);
    // Row blocks of about 4M logits keep the temporaries (logsumexp's) small.
    const int64_t rows = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(1, work.size(1)));
    torch::Tensor loss = torch::zeros({}, work.options());
    for (int64_t start = 0; start < work.size(0); start += rows) {
      const int64_t count = std::min(rows, work.size(0) - start);
      torch::Tensor block = work.narrow(0, start, count);
      loss += LossAndGradientInPlace(block, targets.narrow(0, start, count), eps);
    }
    ctx->save_for_backward({work});
    return loss;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto dtype = static_cast<c10::ScalarType>(ctx->saved_data["dtype"].toInt());
    return {Scaled(ctx->get_saved_variables()[0], grad_outputs[0], dtype), torch::Tensor(), torch::Tensor()};
  }
};

// Liger's chunk size: about as many logits per chunk as the hidden states hold, i.e.
// N / ceil(V / D) rows, rounded up to a power of two.
int64_t ChunkRows(int64_t rows, int64_t vocab, int64_t width) {
  const int64_t factor = (vocab + width - 1) / width;
  const int64_t target = std::max<int64_t>(1, (rows + factor - 1) / factor);
  int64_t chunk = 1;
  while (chunk < target) chunk *= 2;
  return chunk;
}

class FusedLinearCrossEntropyFunction : public torch::autograd::Function<FusedLinearCrossEntropyFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& hidden, const torch::Tensor& weight,
                               const torch::Tensor& targets, double eps) {
    const bool grads = hidden.requires_grad() || weight.requires_grad();
    const int64_t n = hidden.size(0);
    const int64_t chunk = ChunkRows(n, weight.size(0), weight.size(1));
    torch::Tensor loss = torch::zeros({}, hidden.options().dtype(torch::kFloat));
    torch::Tensor grad_hidden, grad_weight;
    if (grads) {
      grad_hidden = torch::empty_like(hidden);
      grad_weight = torch::zeros(weight.sizes(), weight.options().dtype(torch::kFloat));
    }
    for (int64_t start = 0; start < n; start += chunk) {
      const int64_t rows = std::min(chunk, n - start);
      torch::Tensor h = hidden.narrow(0, start, rows);
      torch::Tensor t = targets.narrow(0, start, rows);
      torch::Tensor logits = torch::matmul(h, weight.t()).to(torch::kFloat);
      if (!grads) {
        loss += LossOnly(logits, t, eps);
        continue;
      }
      loss += LossAndGradientInPlace(logits, t, eps);  // logits now hold their gradient
      grad_hidden.narrow(0, start, rows).copy_(torch::matmul(logits, weight.to(torch::kFloat)));
      grad_weight.add_(torch::matmul(logits.t(), h.to(torch::kFloat)));
    }
    if (grads) ctx->save_for_backward({grad_hidden, grad_weight});
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight.scalar_type());
    return loss;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    variable_list saved = ctx->get_saved_variables();
    const auto weight_dtype = static_cast<c10::ScalarType>(ctx->saved_data["weight_dtype"].toInt());
    return {Scaled(saved[0], grad_outputs[0], saved[0].scalar_type()), Scaled(saved[1], grad_outputs[0], weight_dtype),
            torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor LigerRmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return RmsNormFunction::apply(x, weight, eps);
}

torch::Tensor LigerRope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  return RopeFunction::apply(x, cos, sin);
}

torch::Tensor LigerSwiGlu(const torch::Tensor& gate, const torch::Tensor& up) {
  return SwiGluFunction::apply(gate, up);
}

torch::Tensor LigerCrossEntropySum(const torch::Tensor& logits, const torch::Tensor& targets, double label_smoothing) {
  return CrossEntropyFunction::apply(logits, targets, label_smoothing);
}

torch::Tensor LigerFusedLinearCrossEntropySum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                              const torch::Tensor& targets, double label_smoothing) {
  return FusedLinearCrossEntropyFunction::apply(hidden, weight, targets, label_smoothing);
}

}  // namespace trainerd
