#include "worker/models/gpt.h"

#include <cmath>

#include <nlohmann/json.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "spec/spec_defaults.h"
#include "worker/data/sentencepiece_model.h"
#include "worker/models/activation_checkpoint.h"
#include "worker/models/liger_kernels.h"

namespace trainerd {
namespace {

constexpr double kRmsEps = 1e-6;
constexpr double kRopeTheta = 10000.0;

struct GptConfig {
  int64_t vocab = 0, width = kDefaultTextHiddenSize, layers = kDefaultTextLayers, heads = kDefaultTextHeads;
  int64_t inner = 0, classes = 0, pad_id = -1, bos_id = -1, eos_id = -1;
  double dropout = 0;
  bool causal = true;
};

// The decoder is a LlamaForCausalLM (pre-norm RMSNorm blocks, rotary attention,
// SwiGLU, tied embeddings): its config.json for the saved folder.
std::string LlamaConfigJson(const GptConfig& c) {
  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"vocab_size", c.vocab},
                      {"hidden_size", c.width},
                      {"intermediate_size", c.inner},
                      {"num_hidden_layers", c.layers},
                      {"num_attention_heads", c.heads},
                      {"num_key_value_heads", c.heads},
                      {"hidden_act", "silu"},
                      {"max_position_embeddings", 2048},
                      {"rms_norm_eps", kRmsEps},
                      {"rope_theta", kRopeTheta},
                      {"rope_scaling", nullptr},
                      {"attention_bias", false},
                      {"attention_dropout", 0.0},
                      {"tie_word_embeddings", true},
                      {"initializer_range", 0.02},
                      {"pretraining_tp", 1},
                      {"use_cache", true},
                      {"torch_dtype", "float32"}};
  if (c.bos_id >= 0) j["bos_token_id"] = c.bos_id;
  if (c.eos_id >= 0) j["eos_token_id"] = c.eos_id;
  if (c.pad_id >= 0) j["pad_token_id"] = c.pad_id;
  return j.dump(2) + "\n";
}

torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight) {
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + kRmsEps) * weight;
}

// HF Llama's rotate_half convention: the two halves of each head's features rotate.
torch::Tensor Rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

struct BlockImpl : torch::nn::Module {
  // `kernels` belongs to the network and outlives the block.
  BlockImpl(const GptConfig& c, double out_std, const LigerKernels* kernels)
      : heads(c.heads), dropout(c.dropout), kernels(kernels) {
    norm1 = register_parameter("norm1_weight", torch::ones({c.width}));
    norm2 = register_parameter("norm2_weight", torch::ones({c.width}));
    qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(c.width, 3 * c.width).bias(false)));
    out = register_module("out", torch::nn::Linear(torch::nn::LinearOptions(c.width, c.width).bias(false)));
    gate = register_module("gate", torch::nn::Linear(torch::nn::LinearOptions(c.width, c.inner).bias(false)));
    up = register_module("up", torch::nn::Linear(torch::nn::LinearOptions(c.width, c.inner).bias(false)));
    down = register_module("down", torch::nn::Linear(torch::nn::LinearOptions(c.inner, c.width).bias(false)));
    torch::NoGradGuard no_grad;
    for (auto* l : {&qkv, &gate, &up}) (*l)->weight.normal_(0, 0.02);
    for (auto* l : {&out, &down}) (*l)->weight.normal_(0, out_std);  // GPT-2: scaled by depth
  }

  // `mask`: true where attention is not allowed, broadcast to [B, H, L, L].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask) {
    const int64_t b = x.size(0), l = x.size(1), d = x.size(2), hd = d / heads;
    std::vector<torch::Tensor> parts = qkv(Norm(x, norm1)).view({b, l, 3, heads, hd}).unbind(2);
    torch::Tensor q = Rotate(parts[0].transpose(1, 2), cos, sin);
    torch::Tensor k = Rotate(parts[1].transpose(1, 2), cos, sin);
    torch::Tensor v = parts[2].transpose(1, 2);
    torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(hd));
    torch::Tensor attn = torch::softmax(scores.masked_fill(mask, -std::numeric_limits<float>::infinity()), -1);
    torch::Tensor y = torch::matmul(attn, v).transpose(1, 2).reshape({b, l, d});
    torch::Tensor h = x + torch::dropout(out(y), dropout, is_training());
    torch::Tensor n = Norm(h, norm2);
    torch::Tensor mlp = kernels->swiglu ? LigerSwiGlu(gate(n), up(n)) : torch::silu(gate(n)) * up(n);
    return h + torch::dropout(down(mlp), dropout, is_training());
  }

  torch::Tensor Norm(const torch::Tensor& x, const torch::Tensor& w) const {
    return kernels->rms_norm ? LigerRmsNorm(x, w, kRmsEps) : RmsNorm(x, w);
  }
  torch::Tensor Rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) const {
    return kernels->rope ? LigerRope(x, cos, sin) : Rope(x, cos, sin);
  }

  int64_t heads;
  double dropout;
  const LigerKernels* kernels;
  torch::Tensor norm1, norm2;
  torch::nn::Linear qkv{nullptr}, out{nullptr}, gate{nullptr}, up{nullptr}, down{nullptr};
};
TORCH_MODULE(Block);

struct GptNetImpl : torch::nn::Module {
  explicit GptNetImpl(GptConfig c) : config(c) {
    embedding = register_parameter("embedding_weight", torch::randn({c.vocab, c.width}) * 0.02);
    blocks = register_module("blocks", torch::nn::ModuleList());
    const double out_std = 0.02 / std::sqrt(2.0 * static_cast<double>(c.layers));
    for (int64_t i = 0; i < c.layers; ++i) blocks->push_back(Block(c, out_std, &kernels));
    norm = register_parameter("norm_weight", torch::ones({c.width}));
    if (c.classes > 0) {
      head = register_module("head", torch::nn::Linear(c.width, c.classes));
    }
  }

  torch::Tensor forward(const torch::Tensor& ids) {
    torch::Tensor x = Hidden(ids);
    if (config.classes == 0) return torch::matmul(x, embedding.t());  // tied output layer
    torch::Tensor real = (ids != config.pad_id).unsqueeze(-1).to(x.dtype());
    torch::Tensor pooled = (x * real).sum(1) / real.sum(1).clamp_min(1);
    return head(pooled);
  }

  // Next-token cross-entropy summed over the labels that are not -100 (position t
  // predicts label t + 1), through the fused kernels: the chunked linear + loss never
  // makes the whole logits; the fused loss overwrites logits only it holds.
  torch::Tensor CausalLmLossSum(const torch::Tensor& ids, const torch::Tensor& labels, double label_smoothing) {
    const int64_t l = ids.size(1);
    torch::Tensor x = Hidden(ids).narrow(1, 0, l - 1).reshape({-1, config.width});
    torch::Tensor targets = labels.narrow(1, 1, l - 1).reshape({-1});
    if (kernels.fused_linear_cross_entropy) {
      return LigerFusedLinearCrossEntropySum(x, embedding, targets, label_smoothing);
    }
    return LigerCrossEntropySum(torch::matmul(x, embedding.t()), targets, label_smoothing);
  }

  // The last block's output, normalised.
  torch::Tensor Hidden(const torch::Tensor& ids) {
    const int64_t l = ids.size(1), hd = config.width / config.heads;
    torch::Tensor inv_freq = torch::pow(kRopeTheta, -torch::arange(0, hd, 2, ids.options().dtype(torch::kFloat)) / hd);
    torch::Tensor freqs = torch::outer(torch::arange(l, ids.options().dtype(torch::kFloat)), inv_freq);
    torch::Tensor angles = torch::cat({freqs, freqs}, -1);
    torch::Tensor cos = angles.cos(), sin = angles.sin();
    torch::Tensor mask;
    if (config.causal) {
      mask = torch::ones({l, l}, ids.options().dtype(torch::kBool)).triu(1);
    } else {
      mask = (ids == config.pad_id).view({ids.size(0), 1, 1, l});  // padding keys
    }
    torch::Tensor x = Embed(ids);
    for (const auto& block : *blocks) {
      BlockImpl* b = block->as<Block>();
      x = MaybeCheckpoint(
          checkpointing && is_training(), [b, cos, sin, mask](const torch::Tensor& h) { return b->forward(h, cos, sin, mask); },
          x);
    }
    return kernels.rms_norm ? LigerRmsNorm(x, norm, kRmsEps) : RmsNorm(x, norm);
  }

  // The token embeddings, with NEFTune's noise while training: uniform in [-1, 1],
  // scaled by alpha / sqrt(L x d) as HF's neftune_post_forward_hook does.
  torch::Tensor Embed(const torch::Tensor& ids) {
    torch::Tensor x = torch::embedding(embedding, ids);
    if (neftune_alpha > 0 && is_training()) {
      const double magnitude = neftune_alpha / std::sqrt(static_cast<double>(ids.size(1) * x.size(2)));
      torch::Tensor noise;
      {
        torch::NoGradGuard no_grad;
        noise = torch::empty_like(x).uniform_(-magnitude, magnitude);
      }
      x = x + noise;
    }
    return x;
  }

  GptConfig config;
  double neftune_alpha = 0;
  bool checkpointing = false;
  LigerKernels kernels;
  torch::Tensor embedding, norm;
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(GptNet);

// The forward pass as TorchScript source over the same weights, for model.pt.
std::string ScriptSource(const GptConfig& c) {
  std::string s = absl::StrCat(R"(
def _norm(self, x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + )", kRmsEps, R"() * w

def _rope(self, x, cos, sin):
    half = x.size(-1) // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin

def _block(self, x, norm1, qkv, out, norm2, gate, up, down, cos, sin, mask):
    b, l, d = x.size(0), x.size(1), x.size(2)
    hd = d // )", c.heads, R"(
    parts = torch.linear(self._norm(x, norm1), qkv).view(b, l, 3, )", c.heads, R"(, hd).unbind(2)
    q = self._rope(parts[0].transpose(1, 2), cos, sin)
    k = self._rope(parts[1].transpose(1, 2), cos, sin)
    v = parts[2].transpose(1, 2)
    scores = torch.matmul(q, k.transpose(-2, -1)) / (float(hd) ** 0.5)
    attn = torch.softmax(scores.masked_fill(mask, float("-inf")), -1)
    h = x + torch.linear(torch.matmul(attn, v).transpose(1, 2).reshape(b, l, d), out)
    n = self._norm(h, norm2)
    g = torch.linear(n, gate)
    return h + torch.linear(g * torch.sigmoid(g) * torch.linear(n, up), down)

def forward(self, ids):
    l = ids.size(1)
    hd = )", c.width / c.heads, R"(
    inv_freq = torch.pow()", kRopeTheta, R"(, -torch.arange(0, hd, 2, device=ids.device).float() / hd)
    freqs = torch.outer(torch.arange(l, device=ids.device).float(), inv_freq)
    angles = torch.cat([freqs, freqs], -1)
    cos, sin = angles.cos(), angles.sin()
)");
  if (c.causal) {
    s += "    mask = torch.ones(l, l, device=ids.device).triu(1) > 0\n";
  } else {
    absl::StrAppend(&s, "    mask = (ids == ", c.pad_id, ").view(ids.size(0), 1, 1, l)\n");
  }
  s += "    x = torch.embedding(self.embedding_weight, ids)\n";
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string p = absl::StrCat("self.blocks_", i, "_");
    absl::StrAppend(&s, "    x = self._block(x, ", p, "norm1_weight, ", p, "qkv_weight, ", p, "out_weight, ", p,
                    "norm2_weight, ", p, "gate_weight, ", p, "up_weight, ", p, "down_weight, cos, sin, mask)\n");
  }
  s += "    x = self._norm(x, self.norm_weight)\n";
  if (c.classes == 0) {
    s += "    return torch.matmul(x, self.embedding_weight.t())\n";
  } else {
    absl::StrAppend(&s, "    real = (ids != ", c.pad_id, ").unsqueeze(-1).type_as(x)\n",
                    "    pooled = (x * real).sum(1) / real.sum(1).clamp_min(1)\n",
                    "    return torch.linear(pooled, self.head_weight, self.head_bias)\n");
  }
  return s;
}

// The LlamaForCausalLM name(s) of one of the causal decoder's tensors: the fused qkv is
// q_proj, k_proj and v_proj (its thirds, in that order); the others map one to one.
std::vector<std::string> LlamaNames(const std::string& name) {
  if (name == "embedding_weight") return {"model.embed_tokens.weight"};
  if (name == "norm_weight") return {"model.norm.weight"};
  std::vector<std::string> parts = absl::StrSplit(name, '.');
  if (parts.size() < 3 || parts[0] != "blocks") return {name};
  const std::string layer = absl::StrCat("model.layers.", parts[1], ".");
  const std::string& part = parts[2];
  if (part == "qkv") {
    return {layer + "self_attn.q_proj.weight", layer + "self_attn.k_proj.weight", layer + "self_attn.v_proj.weight"};
  }
  if (part == "out") return {layer + "self_attn.o_proj.weight"};
  if (part == "gate" || part == "up" || part == "down") return {absl::StrCat(layer, "mlp.", part, "_proj.weight")};
  if (part == "norm1_weight") return {layer + "input_layernorm.weight"};
  if (part == "norm2_weight") return {layer + "post_attention_layernorm.weight"};
  return {name};
}

class TextModel : public Model {
 public:
  explicit TextModel(GptConfig config) : net_(config) {}
  torch::Tensor Forward(const torch::Tensor& inputs) override { return net_->forward(inputs); }
  NamedTensors NamedParameters() const override { return ModuleParameters(*net_); }
  NamedTensors NamedBuffers() const override { return {}; }
  void SetTraining(bool training) override { net_->train(training); }
  void To(const torch::Device& device) override { net_->to(device); }
  bool SetNeftuneNoiseAlpha(double alpha) override {
    net_->neftune_alpha = alpha;
    return true;
  }
  torch::Tensor InputEmbeddings(const torch::Tensor& ids) override { return net_->Embed(ids); }
  bool SetGradientCheckpointing(bool enabled) override {
    net_->checkpointing = enabled;
    return true;
  }
  bool SetLigerKernels(const LigerKernels& kernels) override {
    net_->kernels = kernels;
    return true;
  }
  torch::Tensor CausalLmLossSum(const torch::Tensor& ids, const torch::Tensor& labels,
                                double label_smoothing) override {
    const LigerKernels& k = net_->kernels;
    if (net_->config.classes > 0 || !(k.cross_entropy || k.fused_linear_cross_entropy)) return {};
    return net_->CausalLmLossSum(ids, labels, label_smoothing);
  }
  // The causal decoder under LlamaForCausalLM's names, its fused qkv split into
  // q_proj, k_proj and v_proj (the classifier has no transformers counterpart).
  NamedTensors HfState() const override {
    if (net_->config.classes > 0) return NamedState();
    NamedTensors out;
    for (const auto& [name, t] : NamedState()) {
      const std::vector<std::string> names = LlamaNames(name);
      std::vector<torch::Tensor> parts = names.size() == 1 ? std::vector<torch::Tensor>{t} : t.chunk(3, 0);
      for (size_t k = 0; k < names.size(); ++k) out.emplace_back(names[k], parts[k]);
    }
    return out;
  }
  std::map<std::string, torch::Tensor> FromHfNames(std::map<std::string, torch::Tensor> tensors) const override {
    if (net_->config.classes > 0 || tensors.count("model.embed_tokens.weight") == 0) return tensors;
    std::map<std::string, torch::Tensor> out;
    for (const auto& [name, t] : NamedState()) {
      const std::vector<std::string> names = LlamaNames(name);
      std::vector<torch::Tensor> parts;
      for (const std::string& hf : names) {
        auto it = tensors.find(hf);
        if (it != tensors.end()) parts.push_back(it->second);
      }
      // A missing part leaves the name out: the loader reports it.
      if (parts.size() == names.size()) out[name] = parts.size() == 1 ? parts[0] : torch::cat(parts, 0);
    }
    return out;
  }
  std::map<std::string, std::string> HfFolderFiles() const override {
    if (net_->config.classes > 0) return {};
    return {{"config.json", LlamaConfigJson(net_->config)}};
  }
  void SaveTorchScript(std::ostream& out) const override {
    torch::jit::Module m("trainerd.TextModel");
    for (const auto& [name, p] : NamedParameters()) {
      m.register_parameter(absl::StrReplaceAll(name, {{".", "_"}}),
                           p.detach().to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true), /*is_buffer=*/false);
    }
    m.define(ScriptSource(net_->config));
    m.save(out);
  }

 private:
  GptNet net_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> CreateTextModel(const trainer::v1::ModelSpec& spec, const DatasetBundle& data) {
  if (!data.tokenizer) {
    return absl::InvalidArgumentError(absl::StrCat("model.type: ", spec.type(), " needs text data (format text or jsonl)"));
  }
  GptConfig c;
  c.vocab = data.vocab_size;
  if (spec.hidden_size() > 0) c.width = spec.hidden_size();
  if (spec.num_layers() > 0) c.layers = spec.num_layers();
  if (spec.num_heads() > 0) c.heads = spec.num_heads();
  c.inner = spec.intermediate_size() > 0 ? spec.intermediate_size() : DefaultIntermediateSize(c.width);
  c.dropout = spec.dropout();
  c.pad_id = data.pad_id;
  c.bos_id = data.tokenizer->bos_id();
  c.eos_id = data.tokenizer->eos_id();
  if (c.width % c.heads != 0 || (c.width / c.heads) % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("model.num_heads: hidden_size ", c.width, " must split into ",
                                                   c.heads, " heads of an even size"));
  }
  if (spec.type() == "gpt") {
    if (!data.causal_lm) return absl::InvalidArgumentError("model.type: gpt trains on text without labels (no label_field)");
  } else {
    if (data.causal_lm) return absl::InvalidArgumentError("model.type: text_classifier needs data.train.label_field");
    c.causal = false;
    c.classes = data.num_classes;
  }
  return std::unique_ptr<Model>(new TextModel(c));
}

}  // namespace trainerd
