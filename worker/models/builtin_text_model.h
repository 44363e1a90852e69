// The built-in text models, gpt (a causal language model) and text_classifier, sized from
// the spec and the data: configurations of the Llama model (models/hf/llama_model.h), so
// that one transformer serves every decoder. Tied embeddings, one key/value head per
// query head, no biases, RMSNorm eps 1e-6, rope_theta 1e4; model.dropout is Llama's
// attention_dropout. gpt is a LlamaForCausalLM, text_classifier a
// LlamaForSequenceClassification (the score of each text's last token). Both save a
// transformers folder and also export TorchScript (model.pt, torch_compile).
#ifndef TRAINERD_WORKER_MODELS_BUILTIN_TEXT_MODEL_H_
#define TRAINERD_WORKER_MODELS_BUILTIN_TEXT_MODEL_H_

#include <memory>

#include "absl/status/statusor.h"
#include "trainer/v1/job_spec.pb.h"
#include "worker/data/dataset.h"
#include "worker/models/model.h"

namespace trainerd {

// model.type gpt (logits [B, L, vocab]) or text_classifier (logits [B, classes]), sized
// from the spec and the data (vocabulary, classes, pad id).
absl::StatusOr<std::unique_ptr<Model>> CreateTextModel(const trainer::v1::ModelSpec& spec, const DatasetBundle& data);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_BUILTIN_TEXT_MODEL_H_
