// torch_compile: LibTorch has no torch.compile. Its equivalent here runs a built-in
// model's forward through TorchScript's graph executor (the profiling executor, which
// specialises and optimises the graph after a few runs), over the very same parameter
// tensors, so the optimizer, checkpoints and export are unchanged.
//
// The compiled graph is the model's exported inference graph: it has no dropout, NEFTune
// or gradient checkpointing, so the spec validator refuses torch_compile with those.
#ifndef TRAINERD_WORKER_MODELS_COMPILED_MODEL_H_
#define TRAINERD_WORKER_MODELS_COMPILED_MODEL_H_

#include <memory>

#include "absl/status/statusor.h"
#include "worker/models/model.h"

namespace trainerd {

// Replaces *model (already on `device`) by a wrapper whose Forward runs the TorchScript
// graph; everything else goes to the original. On error *model is left as it was.
absl::Status CompileModel(std::unique_ptr<Model>* model, const torch::Device& device);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_COMPILED_MODEL_H_
