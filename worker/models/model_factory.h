// CreateModel: the model a job's ModelSpec names (a built-in net, a text model, a
// TorchScript file, or a Hugging Face folder). A new model type gets its own files beside these and one branch here.
#ifndef TRAINERD_WORKER_MODELS_MODEL_FACTORY_H_
#define TRAINERD_WORKER_MODELS_MODEL_FACTORY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "trainer/v1/job_spec.pb.h"
#include "worker/data/dataset.h"
#include "worker/models/model.h"

namespace trainerd {

// Builds the model described by `spec`, sized for `data` (input shape, class count).
// Parameters are initialised from LibTorch's global generator: seed it first.
absl::StatusOr<std::unique_ptr<Model>> CreateModel(const trainer::v1::ModelSpec& spec,
                                                   const DatasetBundle& data);

struct DataAndModel {
  DatasetBundle data;
  std::unique_ptr<Model> model;
};

// A job's data and model, in the order they depend on each other: a Hugging Face
// folder's vocabulary first (pre-tokenized data is checked against it), then the data,
// then the model sized for the data. Seed LibTorch first.
absl::StatusOr<DataAndModel> LoadDataAndModel(const trainer::v1::JobSpec& spec);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_MODEL_FACTORY_H_
