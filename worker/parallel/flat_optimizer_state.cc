#include "worker/parallel/flat_optimizer_state.h"

#include <memory>
#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"

namespace trainerd {
namespace {

std::string KeyOf(const torch::Tensor& param) { return c10::guts::to_string(param.unsafeGetTensorImpl()); }

torch::Tensor StepTensor(int64_t step) { return torch::tensor({step}, torch::kLong); }

int64_t StepOf(const ParamStateTensors& state) {
  auto it = state.find("step");
  if (it == state.end() || it->second.numel() != 1) throw std::invalid_argument("optimizer state: no step");
  return it->second.to(torch::kLong).item<int64_t>();
}

// A copy of `t` (undefined stays undefined: an unused optional buffer).
void PutCopy(ParamStateTensors& out, const std::string& key, const torch::Tensor& t) {
  if (t.defined()) out[key] = t.detach().clone();
}

// `state[key]` shaped and typed as `param`, on its device; undefined when absent and
// not `required`.
torch::Tensor Take(const ParamStateTensors& state, const std::string& key, const torch::Tensor& param, bool required) {
  auto it = state.find(key);
  if (it == state.end()) {
    if (required) throw std::invalid_argument(absl::StrCat("optimizer state: no ", key));
    return {};
  }
  if (it->second.numel() != param.numel()) {
    throw std::invalid_argument(absl::StrCat("optimizer state: ", key, " has ", it->second.numel(),
                                             " elements, the parameter ", param.numel()));
  }
  return it->second.to(param.device(), param.scalar_type()).reshape(param.sizes()).clone();
}

template <typename State>
State* Find(const torch::optim::Optimizer& optimizer, const torch::Tensor& param) {
  auto it = optimizer.state().find(KeyOf(param));
  return it == optimizer.state().end() ? nullptr : static_cast<State*>(it->second.get());
}

template <typename State>
void Put(torch::optim::Optimizer& optimizer, const torch::Tensor& param, std::unique_ptr<State> state) {
  optimizer.state()[KeyOf(param)] = std::move(state);
}

// Adam's and AdamW's states have the same fields.
template <typename State>
void ExportAdam(const State& s, ParamStateTensors& out) {
  out["step"] = StepTensor(s.step());
  PutCopy(out, "exp_avg", s.exp_avg());
  PutCopy(out, "exp_avg_sq", s.exp_avg_sq());
  PutCopy(out, "max_exp_avg_sq", s.max_exp_avg_sq());
}

template <typename State>
std::unique_ptr<State> ImportAdam(const ParamStateTensors& state, const torch::Tensor& param) {
  auto s = std::make_unique<State>();
  s->step(StepOf(state));
  s->exp_avg(Take(state, "exp_avg", param, true));
  s->exp_avg_sq(Take(state, "exp_avg_sq", param, true));
  s->max_exp_avg_sq(Take(state, "max_exp_avg_sq", param, false));
  return s;
}

}  // namespace

bool IsElementwiseState(const std::string& key) { return key != "step"; }

ParamStateTensors ExportParamState(const torch::optim::Optimizer& optimizer, const torch::Tensor& param) {
  ParamStateTensors out;
  if (dynamic_cast<const torch::optim::AdamW*>(&optimizer) != nullptr) {
    if (auto* s = Find<torch::optim::AdamWParamState>(optimizer, param)) ExportAdam(*s, out);
  } else if (dynamic_cast<const torch::optim::Adam*>(&optimizer) != nullptr) {
    if (auto* s = Find<torch::optim::AdamParamState>(optimizer, param)) ExportAdam(*s, out);
  } else if (dynamic_cast<const torch::optim::SGD*>(&optimizer) != nullptr) {
    if (auto* s = Find<torch::optim::SGDParamState>(optimizer, param)) {
      out["step"] = StepTensor(0);  // SGD keeps no count; the key marks "has state"
      PutCopy(out, "momentum_buffer", s->momentum_buffer());
    }
  } else if (dynamic_cast<const torch::optim::Adagrad*>(&optimizer) != nullptr) {
    if (auto* s = Find<torch::optim::AdagradParamState>(optimizer, param)) {
      out["step"] = StepTensor(s->step());
      PutCopy(out, "sum", s->sum());
    }
  } else if (dynamic_cast<const torch::optim::RMSprop*>(&optimizer) != nullptr) {
    if (auto* s = Find<torch::optim::RMSpropParamState>(optimizer, param)) {
      out["step"] = StepTensor(s->step());
      PutCopy(out, "square_avg", s->square_avg());
      PutCopy(out, "momentum_buffer", s->momentum_buffer());
      PutCopy(out, "grad_avg", s->grad_avg());
    }
  } else {
    throw std::invalid_argument(
        "training_args.optim: a sharded checkpoint holds the state of torch's AdamW, Adam, SGD, Adagrad and RMSprop; "
        "this optimizer is none of them");
  }
  return out;
}

void ImportParamState(torch::optim::Optimizer& optimizer, const torch::Tensor& param, const ParamStateTensors& state) {
  (void)ExportParamState(optimizer, param);  // refuses an optimizer of another kind
  if (state.empty()) {
    optimizer.state().erase(KeyOf(param));
    return;
  }
  if (dynamic_cast<const torch::optim::AdamW*>(&optimizer) != nullptr) {
    Put(optimizer, param, ImportAdam<torch::optim::AdamWParamState>(state, param));
  } else if (dynamic_cast<const torch::optim::Adam*>(&optimizer) != nullptr) {
    Put(optimizer, param, ImportAdam<torch::optim::AdamParamState>(state, param));
  } else if (dynamic_cast<const torch::optim::SGD*>(&optimizer) != nullptr) {
    auto s = std::make_unique<torch::optim::SGDParamState>();
    s->momentum_buffer(Take(state, "momentum_buffer", param, false));
    Put(optimizer, param, std::move(s));
  } else if (dynamic_cast<const torch::optim::Adagrad*>(&optimizer) != nullptr) {
    auto s = std::make_unique<torch::optim::AdagradParamState>();
    s->step(StepOf(state));
    s->sum(Take(state, "sum", param, true));
    Put(optimizer, param, std::move(s));
  } else if (dynamic_cast<const torch::optim::RMSprop*>(&optimizer) != nullptr) {
    auto s = std::make_unique<torch::optim::RMSpropParamState>();
    s->step(StepOf(state));
    s->square_avg(Take(state, "square_avg", param, true));
    s->momentum_buffer(Take(state, "momentum_buffer", param, false));
    s->grad_avg(Take(state, "grad_avg", param, false));
    Put(optimizer, param, std::move(s));
  }
}

}  // namespace trainerd
