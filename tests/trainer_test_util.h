// Helpers for tests that drive the Trainer in-process: a validated spec from YAML, and
// a Trainer built from it the way trainer-worker builds one.
#ifndef TRAINERD_TESTS_TRAINER_TEST_UTIL_H_
#define TRAINERD_TESTS_TRAINER_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"
#include "worker/models/model_factory.h"
#include "worker/data/dataset_factory.h"
#include "worker/data/dataset_reader.h"
#include "worker/models/model.h"
#include "worker/trainer/trainer.h"

namespace trainerd::testing {

// `yaml` with --set style overrides, defaults applied; the test fails if it is invalid.
inline trainer::v1::JobSpec Spec(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  auto spec = ParseJobSpec(yaml, sets);
  EXPECT_TRUE(spec.ok()) << spec.status();
  ApplyDefaults(&*spec);
  EXPECT_TRUE(ValidateJobSpec(*spec).ok()) << ValidateJobSpec(*spec);
  return *spec;
}

// Seeds LibTorch, loads the data and builds the model and Trainer of `spec`.
inline std::unique_ptr<Trainer> MakeTrainer(const trainer::v1::JobSpec& spec) {
  torch::manual_seed(static_cast<uint64_t>(spec.training_args().seed()));
  auto loaded = LoadDataAndModel(spec);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return std::make_unique<Trainer>(spec, std::move(loaded->model), std::move(loaded->data));
}

// Just the training arguments of `yaml`, with defaults (no data or model needed).
inline trainer::v1::TrainingArguments Args(const std::string& yaml) {
  auto spec = ParseJobSpec(yaml);
  EXPECT_TRUE(spec.ok()) << spec.status();
  ApplyDefaults(&*spec);
  return spec->training_args();
}

// The training losses a trainer logged, in step order.
inline std::vector<double> LoggedLosses(const Trainer& trainer) {
  std::vector<double> out;
  for (const auto& record : trainer.state().log_history) {
    if (record.count("loss")) out.push_back(record.at("loss"));
  }
  return out;
}

}  // namespace trainerd::testing

#endif  // TRAINERD_TESTS_TRAINER_TEST_UTIL_H_
