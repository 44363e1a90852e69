// BertForSequenceClassification as transformers defines it (modeling_bert.py), with its
// parameter names: word, position and token-type embeddings with LayerNorm, post-norm
// encoder layers attending in both directions with padding masked, the pooler (tanh
// over the first token's state) and the classifier.
//
// Forward takes token ids [B, L] (token types 0), or ids and token types stacked
// [B, 2, L]; padding is where ids equal pad_token_id.
#ifndef TRAINERD_WORKER_MODELS_HF_BERT_MODEL_H_
#define TRAINERD_WORKER_MODELS_HF_BERT_MODEL_H_

#include <memory>

#include "spec/hf_config.h"
#include "worker/models/model.h"

namespace trainerd {

std::unique_ptr<Model> CreateBertModel(const HfConfig& config, torch::ScalarType dtype);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_HF_BERT_MODEL_H_
