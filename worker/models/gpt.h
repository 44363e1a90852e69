// Built-in text models: a GPT-style decoder for causal language modelling and a text
// classifier on the same blocks.
//
// Block (pre-norm, as Llama): x + Attention(RMSNorm(x)), then x + SwiGLU(RMSNorm(x)).
// Attention uses rotary position embeddings and no biases. The decoder's output layer
// shares the token embedding's weights. The classifier attends in both directions,
// masks padding, mean-pools the real tokens and ends in a linear head.
#ifndef TRAINERD_WORKER_MODELS_GPT_H_
#define TRAINERD_WORKER_MODELS_GPT_H_

#include <memory>

#include "absl/status/statusor.h"
#include "trainer/v1/job_spec.pb.h"
#include "worker/data/dataset.h"
#include "worker/models/model.h"

namespace trainerd {

// model.type gpt (logits [B, L, vocab]) or text_classifier (logits [B, classes]), sized
// from the spec and the data (vocabulary, sequence length, classes, pad id).
absl::StatusOr<std::unique_ptr<Model>> CreateTextModel(const trainer::v1::ModelSpec& spec, const DatasetBundle& data);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_GPT_H_
