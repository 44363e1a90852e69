#include "worker/models/hf/llama_model.h"

#include <cmath>

#include <torch/torch.h>

#include "worker/models/block_runner.h"
#include "worker/models/adaptable_linear.h"
#include "worker/models/hf/hf_blocks.h"
#include "worker/models/liger_kernels.h"

namespace trainerd {
namespace {

namespace nn = torch::nn;

AdaptableLinear MakeLinear(int64_t in, int64_t out, bool bias) { return AdaptableLinear(in, out, bias); }

// Each module below reads the network's LigerKernels (`kernels`, owned by LlamaNet, which
// outlives them) to choose between the plain ops and the fused ones.

// LlamaRMSNorm: normalised in float32, scaled in the input's dtype.
struct RmsNormImpl : nn::Module {
  RmsNormImpl(int64_t width, double eps, const LigerKernels* kernels) : eps(eps), kernels(kernels) {
    weight = register_parameter("weight", torch::ones({width}));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    if (kernels->rms_norm) return LigerRmsNorm(x, weight, eps);
    torch::Tensor h = x.to(torch::kFloat);
    h = h * torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps);
    return weight * h.to(x.scalar_type());
  }
  double eps;
  const LigerKernels* kernels;
  torch::Tensor weight;
};
TORCH_MODULE(RmsNorm);

// HF's rotate_half: the two halves of each head's features rotate.
torch::Tensor ApplyRope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

struct AttentionImpl : nn::Module {
  AttentionImpl(const HfConfig& c, const LigerKernels* kernels)
      : heads(c.num_attention_heads), kv_heads(c.num_key_value_heads), head_dim(c.head_dim),
        dropout(c.attention_dropout), kernels(kernels) {
    q_proj = register_module("q_proj", MakeLinear(c.hidden_size, heads * head_dim, c.attention_bias));
    k_proj = register_module("k_proj", MakeLinear(c.hidden_size, kv_heads * head_dim, c.attention_bias));
    v_proj = register_module("v_proj", MakeLinear(c.hidden_size, kv_heads * head_dim, c.attention_bias));
    o_proj = register_module("o_proj", MakeLinear(heads * head_dim, c.hidden_size, c.o_proj_bias));
  }

  // `mask`: additive, [B or 1, 1, L, L] (0 where attention is allowed).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask) {
    const int64_t b = x.size(0), l = x.size(1);
    torch::Tensor q = Rotate(q_proj(x).view({b, l, heads, head_dim}).transpose(1, 2), cos, sin);
    torch::Tensor k = Rotate(k_proj(x).view({b, l, kv_heads, head_dim}).transpose(1, 2), cos, sin);
    torch::Tensor v = v_proj(x).view({b, l, kv_heads, head_dim}).transpose(1, 2);
    if (heads != kv_heads) {  // repeat_kv: query head h reads key/value head h / (heads / kv_heads)
      const int64_t rep = heads / kv_heads;
      k = k.unsqueeze(2).expand({b, kv_heads, rep, l, head_dim}).reshape({b, heads, l, head_dim});
      v = v.unsqueeze(2).expand({b, kv_heads, rep, l, head_dim}).reshape({b, heads, l, head_dim});
    }
    torch::Tensor scores = torch::matmul(q, k.transpose(2, 3)) / std::sqrt(static_cast<double>(head_dim)) + mask;
    torch::Tensor attn = torch::softmax(scores, -1, torch::kFloat).to(q.scalar_type());
    attn = torch::dropout(attn, dropout, is_training());
    torch::Tensor y = torch::matmul(attn, v).transpose(1, 2).reshape({b, l, heads * head_dim});
    return o_proj(y);
  }

  torch::Tensor Rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) const {
    return kernels->rope ? LigerRope(x, cos, sin) : ApplyRope(x, cos, sin);
  }

  int64_t heads, kv_heads, head_dim;
  double dropout;
  const LigerKernels* kernels;
  AdaptableLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(Attention);

struct MlpImpl : nn::Module {
  MlpImpl(const HfConfig& c, const LigerKernels* kernels) : kernels(kernels) {
    gate_proj = register_module("gate_proj", MakeLinear(c.hidden_size, c.intermediate_size, false));
    up_proj = register_module("up_proj", MakeLinear(c.hidden_size, c.intermediate_size, false));
    down_proj = register_module("down_proj", MakeLinear(c.intermediate_size, c.hidden_size, false));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return down_proj(kernels->swiglu ? LigerSwiGlu(gate_proj(x), up_proj(x)) : torch::silu(gate_proj(x)) * up_proj(x));
  }
  const LigerKernels* kernels;
  AdaptableLinear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

struct DecoderLayerImpl : nn::Module {
  DecoderLayerImpl(const HfConfig& c, const LigerKernels* kernels) {
    self_attn = register_module("self_attn", Attention(c, kernels));
    mlp = register_module("mlp", Mlp(c, kernels));
    input_layernorm = register_module("input_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps, kernels));
    post_attention_layernorm =
        register_module("post_attention_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps, kernels));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask) {
    torch::Tensor h = x + self_attn(input_layernorm(x), cos, sin, mask);
    return h + mlp(post_attention_layernorm(h));
  }
  Attention self_attn{nullptr};
  Mlp mlp{nullptr};
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

// LlamaModel: the embedding, the layers and the final norm ("model." in the names).
struct DecoderImpl : nn::Module {
  DecoderImpl(const HfConfig& c, const LigerKernels* kernels) : config(c) {
    embed_tokens = register_module("embed_tokens", nn::Embedding(c.vocab_size, c.hidden_size));
    layers = register_module("layers", nn::ModuleList());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      DecoderLayer layer(c, kernels);
      DropParameterDataIfDeferring(*layer);  // before the next block: one at a time
      layers->push_back(layer);
    }
    norm = register_module("norm", RmsNorm(c.hidden_size, c.rms_norm_eps, kernels));
  }

  // The final hidden states [B, L, hidden] of token ids [B, L], each layer run by
  // `blocks` (checkpointed in training when asked).
  torch::Tensor forward(const torch::Tensor& ids, double neftune_alpha, const BlockRunner& blocks) {
    const int64_t l = ids.size(1);
    torch::Tensor x = Embed(ids, neftune_alpha);
    // LlamaRotaryEmbedding, computed in float32 as transformers does.
    const auto f32 = ids.options().dtype(torch::kFloat);
    torch::Tensor inv_freq =
        1.0 / torch::pow(config.rope_theta, torch::arange(0, config.head_dim, 2, ids.options().dtype(torch::kLong))
                                                .to(torch::kFloat) /
                                            static_cast<double>(config.head_dim));
    torch::Tensor freqs = torch::outer(torch::arange(l, f32), inv_freq);
    torch::Tensor angles = torch::cat({freqs, freqs}, -1);
    torch::Tensor cos = angles.cos().to(x.scalar_type()), sin = angles.sin().to(x.scalar_type());
    torch::Tensor mask = torch::full({l, l}, FinfoMin(x.scalar_type()), ids.options().dtype(x.scalar_type()))
                             .triu(1)
                             .view({1, 1, l, l});
    for (size_t i = 0; i < layers->size(); ++i) {
      DecoderLayerImpl* decoder_layer = layers[i]->as<DecoderLayer>();
      x = blocks.Run(
          static_cast<int64_t>(i),
          [decoder_layer, cos, sin, mask](const torch::Tensor& h) { return decoder_layer->forward(h, cos, sin, mask); },
          x, is_training());
    }
    return norm(x);
  }

  torch::Tensor Embed(const torch::Tensor& ids, double neftune_alpha) {
    return NeftuneNoise(embed_tokens(ids), neftune_alpha, is_training());
  }

  HfConfig config;
  nn::Embedding embed_tokens{nullptr};
  nn::ModuleList layers{nullptr};
  RmsNorm norm{nullptr};
};
TORCH_MODULE(Decoder);

struct LlamaNetImpl : nn::Module {
  explicit LlamaNetImpl(const HfConfig& c) : config(c) {
    model = register_module("model", Decoder(c, &kernels));
    if (c.kind == HfArchitecture::kLlamaForSequenceClassification) {
      score = register_module("score", MakeLinear(c.hidden_size, c.num_labels, false));
    } else if (!c.tie_word_embeddings) {
      lm_head = register_module("lm_head", MakeLinear(c.hidden_size, c.vocab_size, false));
    }
    InitializeLikeTransformers(*this, c.initializer_range);
  }

  torch::Tensor forward(const torch::Tensor& ids) {
    torch::Tensor h = Hidden(ids);
    if (score) {
      // LlamaForSequenceClassification: the last token before the first pad (the last
      // token of a row without padding).
      torch::Tensor logits = score(h);
      torch::Tensor last = torch::full({ids.size(0)}, ids.size(1) - 1, ids.options());
      if (config.pad_token_id >= 0) {
        last = (ids == config.pad_token_id).to(torch::kInt).argmax(-1).to(torch::kLong) - 1;
        last = torch::remainder(last, ids.size(1));
      }
      return logits.index({torch::arange(ids.size(0), ids.options()), last}).to(torch::kFloat);
    }
    torch::Tensor logits = lm_head ? lm_head(h) : torch::matmul(h, model->embed_tokens->weight.t());
    return logits.to(torch::kFloat);
  }

  // The causal LM's next-token loss summed over the labels that are not -100, through
  // the fused loss kernels: the chunked linear + loss never makes the whole logits.
  torch::Tensor CausalLmLossSum(const torch::Tensor& ids, const torch::Tensor& labels, double label_smoothing) {
    const int64_t l = ids.size(1);
    torch::Tensor x = Hidden(ids).narrow(1, 0, l - 1).reshape({-1, config.hidden_size});
    torch::Tensor targets = labels.narrow(1, 1, l - 1).reshape({-1});
    // The fused linear + loss reads lm_head's weight directly: with an adapter on lm_head
    // (LoRA) the head's own forward must make the logits.
    if (lm_head && lm_head->adapter != nullptr) return LigerCrossEntropySum(lm_head(x), targets, label_smoothing);
    if (kernels.fused_linear_cross_entropy) {
      return LigerFusedLinearCrossEntropySum(x, OutputWeight(), targets, label_smoothing);
    }
    return LigerCrossEntropySum(torch::matmul(x, OutputWeight().t()), targets, label_smoothing);
  }

  torch::Tensor Hidden(const torch::Tensor& ids) {
    return model->forward(ids, neftune_alpha, blocks);
  }
  // lm_head's weight, or the token embedding's when they are tied.
  const torch::Tensor& OutputWeight() const { return lm_head ? lm_head->weight : model->embed_tokens->weight; }

  LigerKernels kernels;  // the modules keep a pointer to it
  HfConfig config;
  static constexpr const char* kBlockPrefix = "model.layers.";
  double neftune_alpha = 0;
  BlockRunner blocks;
  Decoder model{nullptr};
  AdaptableLinear lm_head{nullptr}, score{nullptr};
};
TORCH_MODULE(LlamaNet);

class LlamaModel : public HfModel<LlamaNet> {
 public:
  using HfModel::HfModel;
  torch::Tensor InputEmbeddings(const torch::Tensor& ids) override {
    return net()->model->Embed(ids, net()->neftune_alpha);
  }
  bool SetLigerKernels(const LigerKernels& kernels) override {
    net()->kernels = kernels;
    return true;
  }
  torch::Tensor CausalLmLossSum(const torch::Tensor& ids, const torch::Tensor& labels,
                                double label_smoothing) override {
    const LigerKernels& k = net()->kernels;
    if (net()->score || !(k.cross_entropy || k.fused_linear_cross_entropy)) return {};
    return net()->CausalLmLossSum(ids, labels, label_smoothing);
  }
};

}  // namespace

std::unique_ptr<Model> CreateLlamaModel(const HfConfig& config, torch::ScalarType dtype) {
  return std::make_unique<LlamaModel>(config, dtype);
}

}  // namespace trainerd
