// Helpers of the Hugging Face tests: the fixtures (tests/fixtures/hf, written by
// transformers), loading a folder, pre-tokenized rows, and what a saved folder holds.
#ifndef TRAINERD_TESTS_HF_TEST_UTIL_H_
#define TRAINERD_TESTS_HF_TEST_UTIL_H_

#include <map>
#include <memory>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "tests/test_util.h"
#include "spec/hf_config.h"
#include "worker/models/hf/hf_model_loader.h"
#include "worker/models/safetensors.h"

namespace trainerd::testing {

// tests/fixtures/hf/<name>: a fixture folder, or a file in one.
inline std::string Fixture(const std::string& name) {
  return absl::StrCat(SourceDir(), "/tests/fixtures/hf/", name);
}

// Every tensor of a safetensors file, by name (the test fails when it cannot be read).
inline std::map<std::string, torch::Tensor> ReadTensors(const std::string& path) {
  auto decoded = DecodeSafetensors(ReadFile(path));
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  return decoded.ok() ? std::map<std::string, torch::Tensor>(decoded->begin(), decoded->end())
                      : std::map<std::string, torch::Tensor>();
}

// The folder `dir` loaded as trainerd loads model.name_or_path (with torch_dtype
// `dtype`); null, and the test failed, when it does not load.
inline std::unique_ptr<Model> Load(const std::string& dir, const std::string& dtype = "") {
  absl::StatusOr<HfConfig> config = ReadHfConfig(dir);
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<Model>> model = LoadHfModel(dir, *config, dtype);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

// The top-level keys of a config.json.
inline std::set<std::string> ConfigKeys(const std::string& text) {
  std::set<std::string> keys;
  const nlohmann::json j = nlohmann::json::parse(text);
  for (const auto& [key, v] : j.items()) keys.insert(key);
  return keys;
}

// Pre-tokenized rows, one JSON object per line as a tokenized HF dataset is stored:
// each row the first 8 to 40 tokens of one of four fixed random sequences (ids 3..511),
// so that there is something to learn. Fixed by `seed`.
inline void WriteTokenRows(const std::string& path, int rows, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::Tensor sequences = torch::randint(3, 512, {4, 40}, gen);
  std::string text;
  for (int r = 0; r < rows; ++r) {
    const int64_t n = torch::randint(8, 41, {1}, gen).item<int64_t>();
    torch::Tensor ids = sequences[torch::randint(0, 4, {1}, gen).item<int64_t>()].narrow(0, 0, n);
    text += "{\"input_ids\": [";
    for (int64_t k = 0; k < n; ++k) absl::StrAppend(&text, k ? ", " : "", ids[k].item<int64_t>());
    text += "]}\n";
  }
  WriteFile(path, text);
}

// Pre-tokenized rows for classification: 8 to 16 ids, all from the range of the row's
// class (label 0: ids 3..199, label 1: 200..399, label 2: 400..511), so that any token
// tells the class. Fixed by `seed`.
inline void WriteLabelledTokenRows(const std::string& path, int rows, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t low[] = {3, 200, 400}, high[] = {200, 400, 512};
  std::string text;
  for (int r = 0; r < rows; ++r) {
    const int label = r % 3;
    torch::Tensor ids = torch::randint(low[label], high[label], {torch::randint(8, 17, {1}, gen).item<int64_t>()}, gen);
    text += "{\"input_ids\": [";
    for (int64_t k = 0; k < ids.size(0); ++k) absl::StrAppend(&text, k ? ", " : "", ids[k].item<int64_t>());
    absl::StrAppend(&text, "], \"label\": ", label, "}\n");
  }
  WriteFile(path, text);
}

// `a` and `b` hold the same names, and every tensor of `a` equals its namesake in `b`
// bit for bit (in any order).
inline void ExpectSameTensors(const NamedTensors& a, const NamedTensors& b) {
  const std::map<std::string, torch::Tensor> by_name(b.begin(), b.end());
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    auto it = by_name.find(name);
    ASSERT_NE(it, by_name.end()) << name;
    EXPECT_TRUE(torch::equal(t, it->second)) << name;
  }
}

// A 30-step fine-tuning of llama-gqa on the rows at `data` (blocks of 16 tokens, a
// checkpoint every 15 steps); `extra_args` (", key: value") are added to training_args.
inline std::string FineTuneYaml(const std::string& out, const std::string& data, const std::string& extra_args = "") {
  return absl::StrCat("model: {name_or_path: ", Fixture("llama-gqa"), "}\n",
                      "data: {train: {path: ", data, "}, max_seq_length: 16}\n",
                      "training_args: {output_dir: ", out, ", max_steps: 30, per_device_train_batch_size: 4, "
                      "learning_rate: 0.003, logging_steps: 5, save_steps: 15, do_eval: false",
                      extra_args, "}\n");
}

// The header of a safetensors file: every tensor's name, dtype and shape.
inline std::map<std::string, std::string> TensorSignatures(const std::string& path) {
  std::map<std::string, std::string> out;
  for (const auto& [name, t] : ReadTensors(path)) {
    out[name] = absl::StrCat(c10::toString(t.scalar_type()), c10::str(t.sizes()));
  }
  return out;
}

}  // namespace trainerd::testing

#endif  // TRAINERD_TESTS_HF_TEST_UTIL_H_
