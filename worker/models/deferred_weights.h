// Deferred weights: how a model is built without ever holding all of its weights
// (fsdp_config.cpu_ram_efficient_loading). Inside a DeferBlockWeights scope, a model's
// constructor drops each block's parameters' data as soon as the block is built (see
// DropParameterData): they keep their shapes, dtypes and identities (autograd leaves,
// adapters, names) but hold no memory, like the parameters of a unit a sharding strategy
// has released. The loader then reads the parameters that have data from the folder as
// usual and leaves a DeferredWeights behind, from which the strategy reads only this
// rank's slice of every other one straight into its shards.
#ifndef TRAINERD_WORKER_MODELS_DEFERRED_WEIGHTS_H_
#define TRAINERD_WORKER_MODELS_DEFERRED_WEIGHTS_H_

#include <cstdint>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "absl/status/status.h"

namespace trainerd {

// Where the parameters a model was built without come from.
class DeferredWeights {
 public:
  virtual ~DeferredWeights() = default;
  // Whether `param`, a parameter without data, is read from here.
  virtual bool Has(const torch::Tensor& param) const = 0;
  // Copies elements [begin, begin + out.numel()) of `param`'s value, flattened in
  // row-major order, into `out` (one-dimensional, contiguous), converted to its dtype.
  // NOT_FOUND for a parameter that is not here; DATA_LOSS for a file that fails.
  virtual absl::Status ReadSlice(const torch::Tensor& param, int64_t begin, torch::Tensor out) const = 0;
};

// Whether the models built on this thread now drop their blocks' parameters' data
// (within a DeferBlockWeights).
bool DeferringBlockWeights();

// While it lives, models built on this thread drop their blocks' parameters' data.
class DeferBlockWeights {
 public:
  DeferBlockWeights();
  ~DeferBlockWeights();
  DeferBlockWeights(const DeferBlockWeights&) = delete;
  DeferBlockWeights& operator=(const DeferBlockWeights&) = delete;

 private:
  bool was_;
};

// Whether `t` holds its values (false for a parameter whose data was dropped or
// released; true for an empty tensor).
bool HasData(const torch::Tensor& t);

// A tensor of `sizes` and `options` (its dtype and device) without data.
torch::Tensor TensorWithoutData(c10::IntArrayRef sizes, const torch::TensorOptions& options);

// Drops the data of every parameter of `module` (a block a model just built), where
// DeferringBlockWeights(); nothing otherwise.
void DropParameterDataIfDeferring(torch::nn::Module& module);

// Module::to(dtype) for a module some of whose parameters have no data: those get the
// dtype without data.
void ConvertParameters(torch::nn::Module& module, torch::ScalarType dtype);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_DEFERRED_WEIGHTS_H_
