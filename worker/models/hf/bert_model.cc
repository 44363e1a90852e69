#include "worker/models/hf/bert_model.h"

#include <cmath>

#include <torch/torch.h>

#include "worker/models/block_runner.h"
#include "worker/models/adaptable_linear.h"
#include "worker/models/hf/hf_blocks.h"

namespace trainerd {
namespace {

namespace nn = torch::nn;

nn::LayerNorm MakeLayerNorm(const HfConfig& c) {
  return nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps));
}

struct BertEmbeddingsImpl : nn::Module {
  explicit BertEmbeddingsImpl(const HfConfig& c) {
    word_embeddings = register_module("word_embeddings", nn::Embedding(c.vocab_size, c.hidden_size));
    position_embeddings = register_module("position_embeddings", nn::Embedding(c.max_position_embeddings, c.hidden_size));
    token_type_embeddings = register_module("token_type_embeddings", nn::Embedding(c.type_vocab_size, c.hidden_size));
    LayerNorm = register_module("LayerNorm", MakeLayerNorm(c));
  }
  nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  nn::LayerNorm LayerNorm{nullptr};  // transformers' name
};
TORCH_MODULE(BertEmbeddings);

// BertSelfAttention's query/key/value, under "attention.self".
struct BertSelfAttentionImpl : nn::Module {
  explicit BertSelfAttentionImpl(const HfConfig& c) {
    query = register_module("query", AdaptableLinear(c.hidden_size, c.hidden_size));
    key = register_module("key", AdaptableLinear(c.hidden_size, c.hidden_size));
    value = register_module("value", AdaptableLinear(c.hidden_size, c.hidden_size));
  }
  AdaptableLinear query{nullptr}, key{nullptr}, value{nullptr};
};
TORCH_MODULE(BertSelfAttention);

// A dense layer, then dropout, then LayerNorm over it plus the residual
// (BertSelfOutput, BertOutput).
struct BertDenseOutputImpl : nn::Module {
  BertDenseOutputImpl(const HfConfig& c, int64_t in) {
    dense = register_module("dense", AdaptableLinear(in, c.hidden_size));
    LayerNorm = register_module("LayerNorm", MakeLayerNorm(c));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual, double dropout) {
    return LayerNorm(torch::dropout(dense(x), dropout, is_training()) + residual);
  }
  AdaptableLinear dense{nullptr};
  nn::LayerNorm LayerNorm{nullptr};
};
TORCH_MODULE(BertDenseOutput);

struct BertAttentionImpl : nn::Module {
  explicit BertAttentionImpl(const HfConfig& c) {
    self = register_module("self", BertSelfAttention(c));
    output = register_module("output", BertDenseOutput(c, c.hidden_size));
  }
  BertSelfAttention self{nullptr};
  BertDenseOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

struct BertDenseImpl : nn::Module {
  BertDenseImpl(int64_t in, int64_t out) { dense = register_module("dense", AdaptableLinear(in, out)); }
  AdaptableLinear dense{nullptr};
};
TORCH_MODULE(BertDense);

struct BertLayerImpl : nn::Module {
  explicit BertLayerImpl(const HfConfig& c) : config(c) {
    attention = register_module("attention", BertAttention(c));
    intermediate = register_module("intermediate", BertDense(c.hidden_size, c.intermediate_size));
    output = register_module("output", BertDenseOutput(c, c.intermediate_size));
  }
  // `mask`: additive, [B, 1, 1, L] (finfo.min at padding keys).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask) {
    const int64_t b = x.size(0), l = x.size(1), heads = config.num_attention_heads, hd = config.head_dim;
    auto heads_of = [&](const torch::Tensor& t) { return t.view({b, l, heads, hd}).transpose(1, 2); };
    BertSelfAttentionImpl& s = *attention->self;
    torch::Tensor q = heads_of(s.query(x)), k = heads_of(s.key(x)), v = heads_of(s.value(x));
    torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(hd)) + mask;
    torch::Tensor probs = torch::dropout(torch::softmax(scores, -1), config.attention_dropout, is_training());
    torch::Tensor context = torch::matmul(probs, v).transpose(1, 2).reshape({b, l, heads * hd});
    torch::Tensor attended = attention->output->forward(context, x, config.hidden_dropout);
    torch::Tensor inner = Gelu(config.hidden_act, intermediate->dense(attended));
    return output->forward(inner, attended, config.hidden_dropout);
  }
  HfConfig config;
  BertAttention attention{nullptr};
  BertDense intermediate{nullptr};
  BertDenseOutput output{nullptr};
};
TORCH_MODULE(BertLayer);

struct BertEncoderImpl : nn::Module {
  explicit BertEncoderImpl(const HfConfig& c) {
    layer = register_module("layer", nn::ModuleList());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      BertLayer block(c);
      DropParameterDataIfDeferring(*block);  // before the next block: one at a time
      layer->push_back(block);
    }
  }
  nn::ModuleList layer{nullptr};
};
TORCH_MODULE(BertEncoder);

// BertModel ("bert." in the names).
struct BertBaseImpl : nn::Module {
  explicit BertBaseImpl(const HfConfig& c) {
    embeddings = register_module("embeddings", BertEmbeddings(c));
    encoder = register_module("encoder", BertEncoder(c));
    pooler = register_module("pooler", BertDense(c.hidden_size, c.hidden_size));
  }
  BertEmbeddings embeddings{nullptr};
  BertEncoder encoder{nullptr};
  BertDense pooler{nullptr};
};
TORCH_MODULE(BertBase);

struct BertNetImpl : nn::Module {
  explicit BertNetImpl(const HfConfig& c) : config(c) {
    bert = register_module("bert", BertBase(c));
    classifier = register_module("classifier", AdaptableLinear(c.hidden_size, c.num_labels));
    InitializeLikeTransformers(*this, c.initializer_range);
  }

  torch::Tensor forward(const torch::Tensor& inputs) {
    const bool with_types = inputs.dim() == 3;
    const torch::Tensor ids = with_types ? inputs.select(1, 0) : inputs;
    const torch::Tensor types = with_types ? inputs.select(1, 1) : torch::zeros_like(ids);
    const int64_t l = ids.size(1);
    if (l > config.max_position_embeddings) {
      throw std::invalid_argument("data.max_seq_length: longer than the model's max_position_embeddings");
    }
    BertEmbeddingsImpl& e = *bert->embeddings;
    torch::Tensor x = Embed(ids) + e.token_type_embeddings(types) + e.position_embeddings(torch::arange(l, ids.options()));
    x = torch::dropout(e.LayerNorm(x), config.hidden_dropout, is_training());
    // get_extended_attention_mask: (1 - mask) x finfo.min over the keys.
    torch::Tensor padding = ids.eq(config.pad_token_id).view({ids.size(0), 1, 1, l}).to(x.scalar_type());
    torch::Tensor mask = padding * FinfoMin(x.scalar_type());
    for (size_t i = 0; i < bert->encoder->layer->size(); ++i) {
      BertLayerImpl* bert_layer = bert->encoder->layer[i]->as<BertLayer>();
      x = blocks.Run(
          static_cast<int64_t>(i), [bert_layer, mask](const torch::Tensor& h) { return bert_layer->forward(h, mask); }, x,
          is_training());
    }
    torch::Tensor pooled = torch::tanh(bert->pooler->dense(x.select(1, 0)));
    pooled = torch::dropout(pooled, config.classifier_dropout, is_training());
    return classifier(pooled).to(torch::kFloat);
  }

  torch::Tensor Embed(const torch::Tensor& ids) {
    return NeftuneNoise(bert->embeddings->word_embeddings(ids), neftune_alpha, is_training());
  }

  HfConfig config;
  static constexpr const char* kBlockPrefix = "bert.encoder.layer.";
  double neftune_alpha = 0;
  BlockRunner blocks;
  BertBase bert{nullptr};
  AdaptableLinear classifier{nullptr};
};
TORCH_MODULE(BertNet);

class BertModel : public HfModel<BertNet> {
 public:
  using HfModel::HfModel;
  torch::Tensor InputEmbeddings(const torch::Tensor& ids) override { return net()->Embed(ids); }
};

}  // namespace

std::unique_ptr<Model> CreateBertModel(const HfConfig& config, torch::ScalarType dtype) {
  return std::make_unique<BertModel>(config, dtype);
}

}  // namespace trainerd
