#include "worker/models/hf/gpt2_model.h"

#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "worker/models/block_runner.h"
#include "worker/models/adaptable_linear.h"
#include "worker/models/hf/hf_blocks.h"

namespace trainerd {
namespace {

namespace nn = torch::nn;

// GPT-2's Conv1D: a linear layer whose weight is stored [in, out] (transposed against
// nn.Linear), as its checkpoints hold it.
AdaptableLinear Conv1D(int64_t in, int64_t out) {
  return AdaptableLinear(in, out, /*bias=*/true, /*fan_in_fan_out=*/true);
}

struct Gpt2AttentionImpl : nn::Module {
  explicit Gpt2AttentionImpl(const HfConfig& c) : heads(c.num_attention_heads), head_dim(c.head_dim) {
    c_attn = register_module("c_attn", Conv1D(c.hidden_size, 3 * c.hidden_size));
    c_proj = register_module("c_proj", Conv1D(c.hidden_size, c.hidden_size));
  }
  // `allowed`: true where attention is allowed, [1, 1, L, L].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& allowed, const HfConfig& c) {
    const int64_t b = x.size(0), l = x.size(1), d = x.size(2);
    std::vector<torch::Tensor> qkv = c_attn(x).split(d, 2);
    auto heads_of = [&](const torch::Tensor& t) { return t.view({b, l, heads, head_dim}).transpose(1, 2); };
    torch::Tensor q = heads_of(qkv[0]), k = heads_of(qkv[1]), v = heads_of(qkv[2]);
    torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(head_dim));
    scores = torch::where(allowed, scores, torch::full({}, FinfoMin(scores.scalar_type()), scores.options()));
    torch::Tensor attn = torch::dropout(torch::softmax(scores, -1), c.attention_dropout, is_training());
    torch::Tensor y = torch::matmul(attn, v).transpose(1, 2).reshape({b, l, d});
    return torch::dropout(c_proj(y), c.hidden_dropout, is_training());
  }
  int64_t heads, head_dim;
  AdaptableLinear c_attn{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Gpt2Attention);

struct Gpt2MlpImpl : nn::Module {
  explicit Gpt2MlpImpl(const HfConfig& c) : act(c.hidden_act) {
    c_fc = register_module("c_fc", Conv1D(c.hidden_size, c.intermediate_size));
    c_proj = register_module("c_proj", Conv1D(c.intermediate_size, c.hidden_size));
  }
  torch::Tensor forward(const torch::Tensor& x, double dropout) {
    // GPT-2's MLP ends in resid_pdrop's dropout.
    return torch::dropout(c_proj(Gelu(act, c_fc(x))), dropout, is_training());
  }
  std::string act;
  AdaptableLinear c_fc{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Gpt2Mlp);

struct Gpt2BlockImpl : nn::Module {
  explicit Gpt2BlockImpl(const HfConfig& c) {
    const auto ln = nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps);
    ln_1 = register_module("ln_1", nn::LayerNorm(ln));
    attn = register_module("attn", Gpt2Attention(c));
    ln_2 = register_module("ln_2", nn::LayerNorm(ln));
    mlp = register_module("mlp", Gpt2Mlp(c));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& allowed, const HfConfig& c) {
    torch::Tensor h = x + attn(ln_1(x), allowed, c);
    return h + mlp(ln_2(h), c.hidden_dropout);
  }
  nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Gpt2Attention attn{nullptr};
  Gpt2Mlp mlp{nullptr};
};
TORCH_MODULE(Gpt2Block);

// GPT2Model ("transformer." in the names).
struct Gpt2TransformerImpl : nn::Module {
  explicit Gpt2TransformerImpl(const HfConfig& c) {
    wte = register_module("wte", nn::Embedding(c.vocab_size, c.hidden_size));
    wpe = register_module("wpe", nn::Embedding(c.max_position_embeddings, c.hidden_size));
    h = register_module("h", nn::ModuleList());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      Gpt2Block block(c);
      DropParameterDataIfDeferring(*block);  // before the next block: one at a time
      h->push_back(block);
    }
    ln_f = register_module("ln_f", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  }
  nn::Embedding wte{nullptr}, wpe{nullptr};
  nn::ModuleList h{nullptr};
  nn::LayerNorm ln_f{nullptr};
};
TORCH_MODULE(Gpt2Transformer);

struct Gpt2NetImpl : nn::Module {
  explicit Gpt2NetImpl(const HfConfig& c) : config(c) {
    transformer = register_module("transformer", Gpt2Transformer(c));
    // GPT2LMHeadModel's lm_head is the token embedding (tied; not in the folder).
    InitializeLikeTransformers(*this, c.initializer_range);
    // GPT-2's scaled init of the residual projections: std / sqrt(2 x layers).
    torch::NoGradGuard no_grad;
    for (auto& item : named_parameters()) {
      if (!HasData(item.value())) continue;  // read from the folder later (deferred_weights.h)
      if (item.key().size() > 14 && item.key().compare(item.key().size() - 14, 14, "c_proj.weight") == 0) {
        item.value().normal_(0, c.initializer_range / std::sqrt(2.0 * static_cast<double>(c.num_hidden_layers)));
      }
      if (item.key().find("ln_") != std::string::npos && item.key().find(".weight") != std::string::npos) {
        item.value().fill_(1);
      }
    }
  }

  torch::Tensor forward(const torch::Tensor& ids) {
    const int64_t l = ids.size(1);
    if (l > config.max_position_embeddings) {
      throw std::invalid_argument("data.max_seq_length: longer than the model's n_positions");
    }
    torch::Tensor x = Embed(ids) + transformer->wpe(torch::arange(l, ids.options()));
    x = torch::dropout(x, config.embedding_dropout, is_training());
    torch::Tensor allowed = torch::ones({l, l}, ids.options().dtype(torch::kBool)).tril().view({1, 1, l, l});
    for (size_t i = 0; i < transformer->h->size(); ++i) {
      Gpt2BlockImpl* b = transformer->h[i]->as<Gpt2Block>();
      x = blocks.Run(
          static_cast<int64_t>(i), [this, b, allowed](const torch::Tensor& h) { return b->forward(h, allowed, config); },
          x, is_training());
    }
    x = transformer->ln_f(x);
    return torch::matmul(x, transformer->wte->weight.t()).to(torch::kFloat);
  }

  torch::Tensor Embed(const torch::Tensor& ids) { return NeftuneNoise(transformer->wte(ids), neftune_alpha, is_training()); }

  HfConfig config;
  static constexpr const char* kBlockPrefix = "transformer.h.";
  double neftune_alpha = 0;
  BlockRunner blocks;
  Gpt2Transformer transformer{nullptr};
};
TORCH_MODULE(Gpt2Net);

class Gpt2Model : public HfModel<Gpt2Net> {
 public:
  using HfModel::HfModel;
  torch::Tensor InputEmbeddings(const torch::Tensor& ids) override { return net()->Embed(ids); }
};

}  // namespace

std::unique_ptr<Model> CreateGpt2Model(const HfConfig& config, torch::ScalarType dtype) {
  return std::make_unique<Gpt2Model>(config, dtype);
}

}  // namespace trainerd
