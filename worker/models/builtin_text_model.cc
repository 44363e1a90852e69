#include "worker/models/builtin_text_model.h"

#include <limits>

#include <nlohmann/json.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "spec/spec_defaults.h"
#include "worker/data/text_tokenizer.h"
#include "worker/models/forwarding_model.h"
#include "worker/models/hf/llama_model.h"

namespace trainerd {
namespace {

constexpr double kRmsEps = 1e-6;
constexpr double kRopeTheta = 10000.0;

// The built-in models' Llama configuration (tied embeddings, one key/value head per
// query head, no biases), with the config.json text a saved folder gets.
HfConfig BuiltinLlamaConfig(const trainer::v1::ModelSpec& spec, const DatasetBundle& data, bool classifier) {
  HfConfig c;
  c.architecture = classifier ? "LlamaForSequenceClassification" : "LlamaForCausalLM";
  c.model_type = "llama";
  c.kind = classifier ? HfArchitecture::kLlamaForSequenceClassification : HfArchitecture::kLlamaForCausalLM;
  c.vocab_size = data.vocab_size;
  c.hidden_size = spec.hidden_size() > 0 ? spec.hidden_size() : kDefaultTextHiddenSize;
  c.num_hidden_layers = spec.num_layers() > 0 ? spec.num_layers() : kDefaultTextLayers;
  c.num_attention_heads = spec.num_heads() > 0 ? spec.num_heads() : kDefaultTextHeads;
  c.num_key_value_heads = c.num_attention_heads;
  c.head_dim = c.hidden_size / c.num_attention_heads;
  c.intermediate_size =
      spec.intermediate_size() > 0 ? spec.intermediate_size() : DefaultIntermediateSize(c.hidden_size);
  c.max_position_embeddings = 2048;
  c.rms_norm_eps = kRmsEps;
  c.rope_theta = kRopeTheta;
  c.tie_word_embeddings = true;
  c.attention_dropout = spec.dropout();
  c.pad_token_id = data.pad_id;
  c.bos_token_id = data.tokenizer->bos_id();
  c.eos_token_id = data.tokenizer->eos_id();
  c.num_labels = classifier ? data.num_classes : 2;
  if (classifier && static_cast<int64_t>(data.class_names.size()) == c.num_labels) c.id2label = data.class_names;
  c.torch_dtype = "float32";
  nlohmann::json j = {{"architectures", {c.architecture}},
                      {"model_type", c.model_type},
                      {"vocab_size", c.vocab_size},
                      {"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size},
                      {"num_hidden_layers", c.num_hidden_layers},
                      {"num_attention_heads", c.num_attention_heads},
                      {"num_key_value_heads", c.num_key_value_heads},
                      {"hidden_act", "silu"},
                      {"max_position_embeddings", c.max_position_embeddings},
                      {"rms_norm_eps", kRmsEps},
                      {"rope_theta", kRopeTheta},
                      {"rope_scaling", nullptr},
                      {"attention_bias", false},
                      {"attention_dropout", c.attention_dropout},
                      {"tie_word_embeddings", true},
                      {"initializer_range", c.initializer_range},
                      {"pretraining_tp", 1},
                      {"use_cache", true},
                      {"torch_dtype", "float32"}};
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_id >= 0) j["eos_token_id"] = c.eos_token_id;
  if (c.pad_token_id >= 0) j["pad_token_id"] = c.pad_token_id;
  c.json = j.dump(2) + "\n";
  return c;
}

// The forward pass of a built-in Llama configuration as TorchScript source over the same
// weights (attribute names are the parameter names with '_' for '.'), for model.pt and
// torch_compile.
std::string ScriptSource(const HfConfig& c) {
  const int64_t heads = c.num_attention_heads, hd = c.head_dim;
  std::string s = absl::StrCat(R"(
def _norm(self, x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + )", c.rms_norm_eps, R"())

def _rope(self, x, cos, sin):
    half = x.size(-1) // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin

def _layer(self, x, ln1, q, k, v, o, ln2, gate, up, down, cos, sin, mask):
    b, l = x.size(0), x.size(1)
    n = self._norm(x, ln1)
    qh = self._rope(torch.linear(n, q).view(b, l, )", heads, ", ", hd, R"().transpose(1, 2), cos, sin)
    kh = self._rope(torch.linear(n, k).view(b, l, )", heads, ", ", hd, R"().transpose(1, 2), cos, sin)
    vh = torch.linear(n, v).view(b, l, )", heads, ", ", hd, R"().transpose(1, 2)
    scores = torch.matmul(qh, kh.transpose(2, 3)) / ()", hd, R"(.0 ** 0.5) + mask
    y = torch.matmul(torch.softmax(scores, -1), vh).transpose(1, 2).reshape(b, l, )", heads * hd, R"()
    h = x + torch.linear(y, o)
    n2 = self._norm(h, ln2)
    g = torch.linear(n2, gate)
    return h + torch.linear(g * torch.sigmoid(g) * torch.linear(n2, up), down)

def forward(self, ids):
    l = ids.size(1)
    inv_freq = 1.0 / torch.pow()", c.rope_theta, ", torch.arange(0, ", hd, ", 2, device=ids.device).float() / ", hd,
                               R"()
    freqs = torch.outer(torch.arange(l, device=ids.device).float(), inv_freq)
    angles = torch.cat([freqs, freqs], -1)
    cos, sin = angles.cos(), angles.sin()
    mask = torch.full([l, l], )", std::numeric_limits<float>::lowest() * 0.999, R"(, device=ids.device).triu(1).view(1, 1, l, l)
    x = torch.embedding(self.model_embed_tokens_weight, ids)
)");
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("self.model_layers_", i, "_");
    absl::StrAppend(&s, "    x = self._layer(x, ", p, "input_layernorm_weight, ", p, "self_attn_q_proj_weight, ", p,
                    "self_attn_k_proj_weight, ", p, "self_attn_v_proj_weight, ", p, "self_attn_o_proj_weight, ", p,
                    "post_attention_layernorm_weight, ", p, "mlp_gate_proj_weight, ", p, "mlp_up_proj_weight, ", p,
                    "mlp_down_proj_weight, cos, sin, mask)\n");
  }
  s += "    x = self._norm(x, self.model_norm_weight)\n";
  if (c.kind == HfArchitecture::kLlamaForCausalLM) {
    s += "    return torch.matmul(x, self.model_embed_tokens_weight.t())\n";
  } else {
    // LlamaForSequenceClassification: the score of each row's last token before the
    // first pad.
    s += "    logits = torch.linear(x, self.score_weight)\n";
    s += "    last = torch.zeros_like(ids[:, 0]) + (l - 1)\n";
    if (c.pad_token_id >= 0) {
      absl::StrAppend(&s, "    last = torch.remainder((ids == ", c.pad_token_id,
                      ").int().argmax(-1) - 1, l)\n");
    }
    s += "    return logits[torch.arange(ids.size(0), device=ids.device), last]\n";
  }
  return s;
}

// The LlamaForCausalLM name(s) of a tensor of the built-in decoder as earlier versions
// named it (checkpoints written by them still resume): the fused qkv is q_proj, k_proj
// and v_proj (its thirds, in that order); the others map one to one.
std::vector<std::string> LegacyLlamaNames(const std::string& name) {
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

// A built-in gpt or text_classifier: a Llama model that also exports TorchScript.
class BuiltinTextModel : public ForwardingModel {
 public:
  explicit BuiltinTextModel(const HfConfig& config)
      : ForwardingModel(CreateLlamaModel(config, torch::kFloat)), config_(config) {}

  bool HasTorchScript() const override { return true; }
  void SaveTorchScript(std::ostream& out) const override {
    torch::jit::Module m("trainerd.TextModel");
    for (const auto& [name, p] : NamedParameters()) {
      m.register_parameter(absl::StrReplaceAll(name, {{".", "_"}}),
                           p.detach().to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true), /*is_buffer=*/false);
    }
    m.define(ScriptSource(config_));
    m.save(out);
  }
  // Tensors under the earlier versions' own names are renamed to Llama's.
  std::map<std::string, torch::Tensor> FromHfNames(std::map<std::string, torch::Tensor> tensors) const override {
    if (tensors.count("embedding_weight") == 0) return tensors;
    std::map<std::string, torch::Tensor> out;
    for (const auto& [name, t] : tensors) {
      const std::vector<std::string> names = LegacyLlamaNames(name);
      std::vector<torch::Tensor> parts = names.size() == 1 ? std::vector<torch::Tensor>{t} : t.chunk(3, 0);
      for (size_t k = 0; k < names.size(); ++k) out[names[k]] = parts[k];
    }
    return out;
  }

 private:
  HfConfig config_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> CreateTextModel(const trainer::v1::ModelSpec& spec, const DatasetBundle& data) {
  if (!data.tokenizer) {
    return absl::InvalidArgumentError(absl::StrCat("model.type: ", spec.type(), " needs text data (format text or jsonl)"));
  }
  const bool classifier = spec.type() == "text_classifier";
  if (!classifier && !data.causal_lm) {
    return absl::InvalidArgumentError("model.type: gpt trains on text without labels (no label_field)");
  }
  if (classifier && data.causal_lm) {
    return absl::InvalidArgumentError("model.type: text_classifier needs data.train.label_field");
  }
  const HfConfig config = BuiltinLlamaConfig(spec, data, classifier);
  if (config.hidden_size % config.num_attention_heads != 0 || config.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("model.num_heads: hidden_size ", config.hidden_size,
                                                   " must split into ", config.num_attention_heads,
                                                   " heads of an even size"));
  }
  return std::unique_ptr<Model>(new BuiltinTextModel(config));
}

}  // namespace trainerd
