// Hugging Face model folders against the real transformers: tests/fixtures/hf holds
// tiny checkpoints written by transformers 4.40's save_pretrained with the outputs
// transformers computed for a reference batch (see its README). Each is loaded here and
// must give the same logits and loss; damaged folders are refused by tensor name.
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"
#include "tests/test_util.h"
#include "tests/trainer_test_util.h"
#include "worker/models/safetensors.h"
#include "worker/models/hf/hf_config.h"
#include "worker/models/hf/hf_model_loader.h"
#include "worker/models/hf/hf_weights.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::string Fixture(const std::string& name) {
  return absl::StrCat(testing::SourceDir(), "/tests/fixtures/hf/", name);
}

std::map<std::string, torch::Tensor> ReadTensors(const std::string& path) {
  auto decoded = DecodeSafetensors(testing::ReadFile(path));
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  return decoded.ok() ? std::map<std::string, torch::Tensor>(decoded->begin(), decoded->end())
                      : std::map<std::string, torch::Tensor>();
}

std::unique_ptr<Model> Load(const std::string& dir, const std::string& dtype = "") {
  absl::StatusOr<HfConfig> config = ReadHfConfig(dir);
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<Model>> model = LoadHfModel(dir, *config, dtype);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

// The largest difference from transformers' logits, relative to their largest magnitude.
double RelativeError(const torch::Tensor& got, const torch::Tensor& want) {
  return ((got - want).abs().max() / want.abs().max()).item<double>();
}

// transformers' causal LM loss: position t predicts label t + 1, mean over labels != -100.
double CausalLmLoss(const torch::Tensor& logits, const torch::Tensor& labels) {
  const int64_t l = logits.size(1);
  return torch::nn::functional::cross_entropy(
             logits.narrow(1, 0, l - 1).reshape({-1, logits.size(2)}), labels.narrow(1, 1, l - 1).reshape({-1}),
             torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100))
      .item<double>();
}

class CausalLmFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(CausalLmFixture, GivesTransformersLogitsAndLoss) {
  const std::string dir = Fixture(GetParam());
  std::unique_ptr<Model> model = Load(dir);
  ASSERT_NE(model, nullptr);
  model->SetTraining(false);
  // llama-gqa-sharded has no reference of its own: the weights are llama-gqa's.
  auto ref = ReadTensors(Fixture(GetParam() == "llama-gqa-sharded" ? "llama-gqa" : GetParam()) + "/reference.safetensors");
  torch::NoGradGuard no_grad;
  torch::Tensor logits = model->Forward(ref.at("input_ids"));
  ASSERT_EQ(logits.sizes(), ref.at("logits").sizes());
  // Positions after a row's padding are not compared: with right padding they do not
  // change the real ones (attention is causal), and their labels are -100.
  torch::Tensor real = ref.at("attention_mask").to(torch::kBool).unsqueeze(-1).expand_as(logits);
  const double error = RelativeError(logits.masked_select(real), ref.at("logits").masked_select(real));
  EXPECT_LT(error, 1e-5) << GetParam();
  const double loss = CausalLmLoss(logits, ref.at("labels")), want = ref.at("loss").item<double>();
  EXPECT_NEAR(loss, want, 1e-5 * want) << GetParam();
  std::printf("%s: logits within %.2e of transformers' (relative to the largest), loss %.7f vs %.7f\n",
              GetParam().c_str(), error, loss, want);
}

INSTANTIATE_TEST_SUITE_P(Hf, CausalLmFixture,
                         ::testing::Values("llama-gqa", "llama-tied", "qwen2", "mistral", "llama-gqa-bf16",
                                           "llama-gqa-sharded", "gpt2"));

TEST(HfModel, LlamaForSequenceClassificationScoresTheLastRealToken) {
  std::unique_ptr<Model> model = Load(Fixture("llama-seqcls"));
  ASSERT_NE(model, nullptr);
  model->SetTraining(false);
  auto ref = ReadTensors(Fixture("llama-seqcls/reference.safetensors"));
  torch::NoGradGuard no_grad;
  torch::Tensor logits = model->Forward(ref.at("input_ids"));
  ASSERT_EQ(logits.sizes(), ref.at("logits").sizes());
  EXPECT_LT(RelativeError(logits, ref.at("logits")), 1e-5);
  const double loss = torch::nn::functional::cross_entropy(logits, ref.at("labels")).item<double>();
  EXPECT_NEAR(loss, ref.at("loss").item<double>(), 1e-5 * ref.at("loss").item<double>());
}

TEST(HfModel, BertForSequenceClassificationWithTokenTypesAndPadding) {
  std::unique_ptr<Model> model = Load(Fixture("bert-seqcls"));
  ASSERT_NE(model, nullptr);
  model->SetTraining(false);
  auto ref = ReadTensors(Fixture("bert-seqcls/reference.safetensors"));
  // Its padding is where the ids are pad_token_id (0), as the reference's mask says.
  ASSERT_TRUE(torch::equal(ref.at("attention_mask"), ref.at("input_ids").ne(0).to(torch::kLong)));
  torch::NoGradGuard no_grad;
  torch::Tensor logits = model->Forward(torch::stack({ref.at("input_ids"), ref.at("token_type_ids")}, 1));
  ASSERT_EQ(logits.sizes(), ref.at("logits").sizes());
  const double error = RelativeError(logits, ref.at("logits"));
  EXPECT_LT(error, 1e-5);
  const double loss = torch::nn::functional::cross_entropy(logits, ref.at("labels")).item<double>();
  EXPECT_NEAR(loss, ref.at("loss").item<double>(), 1e-5 * ref.at("loss").item<double>());
  std::printf("bert-seqcls: logits within %.2e of transformers', loss %.7f vs %.7f\n", error, loss,
              ref.at("loss").item<double>());
}

std::map<std::string, std::string> TensorSignatures(const std::string& path);
std::set<std::string> ConfigKeys(const std::string& text) {
  std::set<std::string> keys;
  const nlohmann::json j = nlohmann::json::parse(text);
  for (const auto& [key, v] : j.items()) keys.insert(key);
  return keys;
}

// What the Trainer saves of a loaded model (its state under its names, and its
// config.json) has the fixture's tensor names, dtypes and shapes and config keys, so
// that transformers loads it with no missing or unexpected keys.
class SavedFolder : public ::testing::TestWithParam<std::string> {};

TEST_P(SavedFolder, HasTheFixturesTensorsAndConfigKeys) {
  std::unique_ptr<Model> model = Load(Fixture(GetParam()));
  ASSERT_NE(model, nullptr);
  testing::TempDir dir;
  testing::WriteFile(dir / "model.safetensors", EncodeSafetensors(model->NamedState(), {{"format", "pt"}}));
  EXPECT_EQ(TensorSignatures(dir / "model.safetensors"), TensorSignatures(Fixture(GetParam() + "/model.safetensors")));
  const auto files = model->HfFolderFiles();
  EXPECT_EQ(ConfigKeys(files.at("config.json")), ConfigKeys(testing::ReadFile(Fixture(GetParam() + "/config.json"))));
  for (const char* name : {"generation_config.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    const bool has = fs::exists(Fixture(GetParam() + "/" + name));
    EXPECT_EQ(files.count(name), has ? 1u : 0u) << name;
    if (has) EXPECT_EQ(files.at(name), testing::ReadFile(Fixture(GetParam() + "/" + name))) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Hf, SavedFolder,
                         ::testing::Values("llama-gqa", "llama-tied", "qwen2", "mistral", "llama-seqcls", "gpt2",
                                           "bert-seqcls"));

TEST(HfModel, TheBf16AndShardedCopiesLoadToTheSameWeights) {
  std::unique_ptr<Model> whole = Load(Fixture("llama-gqa"));
  std::unique_ptr<Model> sharded = Load(Fixture("llama-gqa-sharded"));
  std::unique_ptr<Model> bf16 = Load(Fixture("llama-gqa-bf16"), "bfloat16");
  ASSERT_TRUE(whole && sharded && bf16);
  NamedTensors a = whole->NamedState(), b = sharded->NamedState(), c = bf16->NamedState();
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.size(), c.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
    EXPECT_EQ(c[i].second.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(a[i].second.to(torch::kBFloat16), c[i].second)) << a[i].first;
  }
}

// A copy of llama-gqa in `dir` whose weights `edit` changed.
void WriteEditedCopy(const fs::path& dir, const std::function<void(NamedTensors&)>& edit,
                     const std::string& config_edit = "") {
  fs::create_directories(dir);
  std::string config = testing::ReadFile(Fixture("llama-gqa/config.json"));
  if (!config_edit.empty()) {
    const size_t at = config.find("\"LlamaForCausalLM\"");
    config.replace(at, std::string("\"LlamaForCausalLM\"").size(), config_edit);
  }
  testing::WriteFile(dir / "config.json", config);
  auto decoded = DecodeSafetensors(testing::ReadFile(Fixture("llama-gqa/model.safetensors")));
  ASSERT_TRUE(decoded.ok());
  edit(*decoded);
  testing::WriteFile(dir / "model.safetensors", EncodeSafetensors(*decoded));
}

absl::Status LoadError(const fs::path& dir) {
  absl::StatusOr<HfConfig> config = ReadHfConfig(dir.string());
  if (!config.ok()) return config.status();
  return LoadHfModel(dir.string(), *config, "").status();
}

TEST(HfModel, MissingUnexpectedAndMisshapenTensorsAreRefusedByName) {
  testing::TempDir tmp;
  WriteEditedCopy(tmp / "missing", [](NamedTensors& t) {
    t.erase(std::remove_if(t.begin(), t.end(), [](const auto& e) { return e.first == "model.layers.1.mlp.up_proj.weight"; }),
            t.end());
  });
  absl::Status s = LoadError(tmp / "missing");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("missing tensors: model.layers.1.mlp.up_proj.weight"));

  WriteEditedCopy(tmp / "unexpected", [](NamedTensors& t) { t.emplace_back("model.extra.weight", torch::zeros({2})); });
  EXPECT_THAT(LoadError(tmp / "unexpected").message(), HasSubstr("unexpected tensors: model.extra.weight"));

  WriteEditedCopy(tmp / "shape", [](NamedTensors& t) {
    for (auto& [name, tensor] : t) {
      if (name == "model.norm.weight") tensor = torch::ones({63});
    }
  });
  EXPECT_THAT(LoadError(tmp / "shape").message(),
              HasSubstr("shape mismatches: model.norm.weight (the folder has [63], the model [64])"));

  WriteEditedCopy(tmp / "arch", [](NamedTensors&) {}, "\"FalconForCausalLM\"");
  EXPECT_THAT(LoadError(tmp / "arch").message(), HasSubstr("architectures: \"FalconForCausalLM\""));

  fs::create_directories(tmp / "empty");
  testing::WriteFile(tmp / "empty/config.json", testing::ReadFile(Fixture("llama-gqa/config.json")));
  EXPECT_THAT(LoadError(tmp / "empty").message(), HasSubstr("has neither model.safetensors"));
}

// GPT-2 as the hub stores it: names without "transformer." and the attention-mask
// buffers old checkpoints carry (transformers ignores them; so does trainerd).
TEST(HfModel, AGpt2FolderWithoutItsPrefixAndWithOldBuffersLoads) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "gpt2");
  testing::WriteFile(tmp / "gpt2/config.json", testing::ReadFile(Fixture("gpt2/config.json")));
  auto decoded = DecodeSafetensors(testing::ReadFile(Fixture("gpt2/model.safetensors")));
  ASSERT_TRUE(decoded.ok());
  for (auto& [name, t] : *decoded) name = name.substr(std::string("transformer.").size());
  decoded->emplace_back("h.0.attn.bias", torch::ones({1, 1, 128, 128}).tril());
  decoded->emplace_back("h.0.attn.masked_bias", torch::tensor(-1e4));
  testing::WriteFile(tmp / "gpt2/model.safetensors", EncodeSafetensors(*decoded));
  std::unique_ptr<Model> model = Load(tmp / "gpt2"), original = Load(Fixture("gpt2"));
  ASSERT_TRUE(model && original);
  model->SetTraining(false);
  original->SetTraining(false);
  auto ref = ReadTensors(Fixture("gpt2/reference.safetensors"));
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(model->Forward(ref.at("input_ids")), original->Forward(ref.at("input_ids"))));
}

// A causal LM checkpoint fine-tuned for classification: lm_head is left unused and the
// new `score` head initialised, as transformers does (and reports), not refused.
TEST(HfModel, ABaseCheckpointGetsANewClassificationHead) {
  testing::TempDir tmp;
  WriteEditedCopy(tmp / "cls", [](NamedTensors&) {}, "\"LlamaForSequenceClassification\"");
  absl::StatusOr<HfConfig> config = ReadHfConfig(tmp / "cls");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<Model>> model = LoadHfModel(tmp / "cls", *config, "");
  ASSERT_TRUE(model.ok()) << model.status();
  bool has_score = false;
  for (const auto& [name, t] : (*model)->NamedState()) {
    if (name == "score.weight") {
      has_score = true;
      EXPECT_EQ(t.sizes(), (std::vector<int64_t>{2, 64}));  // num_labels defaults to 2
      EXPECT_GT(t.abs().sum().item<double>(), 0);           // initialised, not zeros
    }
    EXPECT_NE(name, "lm_head.weight");
  }
  EXPECT_TRUE(has_score);
}

TEST(HfConfig, BadConfigsAreRefusedWithTheKey) {
  const std::string good = testing::ReadFile(Fixture("llama-gqa/config.json"));
  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    text.replace(text.find(from), from.size(), to);
    return ParseHfConfig(text).status();
  };
  EXPECT_TRUE(ParseHfConfig(good).ok());
  EXPECT_THAT(with("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3").message(),
              HasSubstr("num_key_value_heads: 3 does not divide num_attention_heads 4"));
  EXPECT_THAT(with("\"hidden_size\": 64", "\"hidden_size\": -64").message(), HasSubstr("config.json: hidden_size"));
  EXPECT_THAT(with("\"vocab_size\": 512", "\"vocab_size\": \"many\"").message(),
              HasSubstr("config.json: vocab_size: not an integer"));
  EXPECT_THAT(with("\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}").message(),
              HasSubstr("rope_scaling"));
  EXPECT_FALSE(ParseHfConfig("[1, 2]").ok());
  EXPECT_FALSE(ParseHfConfig("{").ok());
  absl::StatusOr<HfConfig> qwen = ParseHfConfig(testing::ReadFile(Fixture("qwen2/config.json")));
  ASSERT_TRUE(qwen.ok()) << qwen.status();
  EXPECT_TRUE(qwen->attention_bias);
  EXPECT_FALSE(qwen->o_proj_bias);
  EXPECT_TRUE(qwen->tie_word_embeddings);
}

// Pre-tokenized rows, one JSON object per line as a tokenized HF dataset is stored:
// each row the first 8 to 40 tokens of one of four fixed random sequences (ids 3..511),
// so that there is something to learn. Fixed by `seed`.
void WriteTokenRows(const std::string& path, int rows, uint64_t seed) {
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
  testing::WriteFile(path, text);
}

std::string FineTuneYaml(const std::string& out, const std::string& data, const std::string& extra_args = "") {
  return absl::StrCat("model: {name_or_path: ", Fixture("llama-gqa"), "}\n",
                      "data: {train: {path: ", data, "}, max_seq_length: 16}\n",
                      "training_args: {output_dir: ", out, ", max_steps: 30, per_device_train_batch_size: 4, "
                      "learning_rate: 0.003, logging_steps: 5, save_steps: 15, do_eval: false",
                      extra_args, "}\n");
}

// The header of a safetensors file: every tensor's name, dtype and shape.
std::map<std::string, std::string> TensorSignatures(const std::string& path) {
  std::map<std::string, std::string> out;
  for (const auto& [name, t] : ReadTensors(path)) {
    out[name] = absl::StrCat(c10::toString(t.scalar_type()), c10::str(t.sizes()));
  }
  return out;
}

TEST(HfTraining, FineTunesALlamaFolderOnPreTokenizedRowsResumesExactlyAndSavesItsFormat) {
  testing::TempDir dir;
  WriteTokenRows(dir / "train.jsonl", 60, 7);
  auto trainer = testing::MakeTrainer(testing::Spec(FineTuneYaml(dir / "out", dir / "train.jsonl")));
  // Packed as run_clm's group_texts: every token of every row, in blocks of 16.
  EXPECT_EQ(trainer->data().train.inputs.size(1), 16);
  EXPECT_TRUE(trainer->data().causal_lm);
  ASSERT_TRUE(trainer->train().ok());
  const std::vector<double> losses = testing::LoggedLosses(*trainer);
  ASSERT_GE(losses.size(), 2u);
  std::printf("fine-tuning llama-gqa: loss %.3f -> %.3f over 30 steps\n", losses.front(), losses.back());
  EXPECT_LT(losses.back(), losses.front() - 0.3);

  // Resumed from checkpoint-15, the run ends with the same weights.
  auto resumed = testing::MakeTrainer(testing::Spec(FineTuneYaml(
      dir / "out", dir / "train.jsonl", absl::StrCat(", resume_from_checkpoint: ", dir / "out/checkpoint-15"))));
  ASSERT_TRUE(resumed->train().ok());
  NamedTensors a = trainer->model().NamedParameters(), b = resumed->model().NamedParameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;

  // The saved folder and each checkpoint hold what transformers loads: the fixture's
  // tensor names, dtypes and shapes, and its config keys.
  ASSERT_TRUE(trainer->save_model(dir / "final").ok());
  const auto want = TensorSignatures(Fixture("llama-gqa/model.safetensors"));
  EXPECT_EQ(TensorSignatures(dir / "final/model.safetensors"), want);
  EXPECT_EQ(TensorSignatures(dir / "out/checkpoint-15/model.safetensors"), want);
  EXPECT_FALSE(fs::exists(dir / "final/model.pt"));
  absl::StatusOr<HfConfig> saved = ReadHfConfig(dir / "final");
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_EQ(ConfigKeys(saved->json), ConfigKeys(testing::ReadFile(Fixture("llama-gqa/config.json"))));
  // And it loads back by name to the trained weights.
  std::unique_ptr<Model> back = Load(dir / "final");
  ASSERT_NE(back, nullptr);
  NamedTensors c = back->NamedState();
  ASSERT_EQ(c.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, c[i].second)) << a[i].first;
}

// The optimizations of the built-in GPT work on these models by HF's own names: GaLore
// on [".*attn.*", ".*mlp.*"] as in the HF guide, NEFTune on the embedding, bf16 autocast,
// and bfloat16 weights (torch_dtype).
TEST(HfTraining, GaLoreNeftuneAndBf16TrainOnHfNames) {
  testing::TempDir dir;
  WriteTokenRows(dir / "train.jsonl", 60, 7);
  for (const std::string& extra : {std::string(", optim: galore_adamw, optim_target_modules: ['.*attn.*', '.*mlp.*'], "
                                               "optim_args: 'rank=8, update_proj_gap=10'"),
                                   std::string(", neftune_noise_alpha: 5"), std::string(", bf16: true")}) {
    auto trainer = testing::MakeTrainer(testing::Spec(FineTuneYaml(dir / "out", dir / "train.jsonl", extra + ", save_strategy: 'no'")));
    ASSERT_TRUE(trainer->train().ok()) << extra;
    const std::vector<double> losses = testing::LoggedLosses(*trainer);
    ASSERT_GE(losses.size(), 2u);
    EXPECT_LT(losses.back(), losses.front()) << extra;
  }
  std::string yaml = FineTuneYaml(dir / "out16", dir / "train.jsonl", ", save_strategy: 'no'");
  yaml.replace(yaml.find("llama-gqa}"), std::string("llama-gqa}").size(), "llama-gqa, torch_dtype: bfloat16}");
  auto trainer = testing::MakeTrainer(testing::Spec(yaml));
  EXPECT_EQ(trainer->model().NamedParameters().front().second.scalar_type(), torch::kBFloat16);
  ASSERT_TRUE(trainer->train().ok());
  EXPECT_LT(testing::LoggedLosses(*trainer).back(), testing::LoggedLosses(*trainer).front());
}

// max_shard_size as save_pretrained's: a model larger than it is saved in shards with an
// index, in checkpoints and the final folder; both load back to the same weights.
TEST(HfTraining, LargeModelsAreSavedInShardsThatLoadAndResume) {
  testing::TempDir dir;
  WriteTokenRows(dir / "train.jsonl", 60, 7);
  auto yaml = [&](const std::string& out, const std::string& extra) {
    std::string y = FineTuneYaml(out, dir / "train.jsonl", extra);
    y.replace(y.find("llama-gqa}"), std::string("llama-gqa}").size(), "llama-gqa, max_shard_size: 200KB}");
    return y;
  };
  auto trainer = testing::MakeTrainer(testing::Spec(yaml(dir / "out", "")));
  ASSERT_TRUE(trainer->train().ok());
  // 632 KB of weights in shards of at most 200 KB (one tensor never split).
  const fs::path checkpoint = fs::path(dir / "out/checkpoint-15");
  EXPECT_FALSE(fs::exists(checkpoint / "model.safetensors"));
  ASSERT_TRUE(fs::exists(checkpoint / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(checkpoint / "model-00001-of-00004.safetensors"));
  EXPECT_TRUE(fs::exists(checkpoint / "model-00004-of-00004.safetensors"));
  auto resumed = testing::MakeTrainer(
      testing::Spec(yaml(dir / "out", absl::StrCat(", resume_from_checkpoint: ", checkpoint.string()))));
  ASSERT_TRUE(resumed->train().ok());
  NamedTensors a = trainer->model().NamedParameters(), b = resumed->model().NamedParameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  ASSERT_TRUE(trainer->save_model(dir / "final").ok());
  EXPECT_TRUE(fs::exists(dir / "final/model.safetensors.index.json"));
  std::unique_ptr<Model> back = Load(dir / "final");
  ASSERT_NE(back, nullptr);
  NamedTensors c = back->NamedState();
  ASSERT_EQ(c.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, c[i].second)) << a[i].first;
}

TEST(HfTraining, PreTokenizedRowsAreCheckedAgainstTheModelsVocabulary) {
  testing::TempDir dir;
  testing::WriteFile(dir / "bad.jsonl", "{\"input_ids\": [1, 2, 512]}\n");
  trainer::v1::JobSpec spec = testing::Spec(FineTuneYaml(dir / "out", dir / "bad.jsonl"));
  absl::StatusOr<DataAndModel> loaded = LoadDataAndModel(spec);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(), HasSubstr("bad.jsonl:1: \"input_ids\"[2] is not a token id of the model (0..511)"));
  testing::WriteFile(dir / "mask.jsonl", "{\"input_ids\": [1, 2, 3], \"attention_mask\": [1, 1]}\n");
  spec.mutable_data()->mutable_train()->set_path(dir / "mask.jsonl");
  loaded = LoadDataAndModel(spec);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(), HasSubstr("\"attention_mask\" is not as long as \"input_ids\""));
  // Without packing each row is one example, its padding labelled -100.
  testing::WriteFile(dir / "rows.jsonl", "{\"input_ids\": [5, 6, 7]}\n{\"input_ids\": [8, 9, 10, 11, 12]}\n");
  spec.mutable_data()->mutable_train()->set_path(dir / "rows.jsonl");
  spec.mutable_data()->set_packing(false);
  spec.mutable_data()->set_max_seq_length(4);
  loaded = LoadDataAndModel(spec);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(torch::equal(loaded->data.train.inputs, torch::tensor({5, 6, 7, 0, 8, 9, 10, 11}).view({2, 4})));
  EXPECT_TRUE(torch::equal(loaded->data.train.labels, torch::tensor({5, 6, 7, -100, 8, 9, 10, 11}).view({2, 4})));
}

// Raw text through the folder's own tokenizer.model with its tokenizer_config.json's
// conventions gives the ids transformers' LlamaTokenizer gave (BOS added, EOS not).
TEST(HfTokenizer, TheFoldersSentencepieceGivesTransformersIds) {
  testing::TempDir dir;
  const nlohmann::json ref = nlohmann::json::parse(testing::ReadFile(Fixture("llama-gqa/reference_tokenization.json")));
  std::string rows;
  for (const auto& text : ref["texts"]) rows += nlohmann::json{{"text", text}}.dump() + "\n";
  testing::WriteFile(dir / "texts.jsonl", rows);
  trainer::v1::JobSpec spec = testing::Spec(absl::StrCat(
      "model: {name_or_path: ", Fixture("llama-gqa"), "}\ndata: {train: {path: ", dir / "texts.jsonl",
      "}, max_seq_length: 64, packing: false}\ntraining_args: {output_dir: ", dir / "out", "}\n"));
  absl::StatusOr<DataAndModel> loaded = LoadDataAndModel(spec);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const torch::Tensor& inputs = loaded->data.train.inputs;
  ASSERT_EQ(inputs.size(0), static_cast<int64_t>(ref["input_ids"].size()));
  for (size_t i = 0; i < ref["input_ids"].size(); ++i) {
    const std::vector<int64_t> want = ref["input_ids"][i].get<std::vector<int64_t>>();
    torch::Tensor got = inputs[i].narrow(0, 0, static_cast<int64_t>(want.size()));
    EXPECT_TRUE(torch::equal(got, torch::tensor(want))) << ref["texts"][i];
    // The rest is padding, which no label predicts.
    EXPECT_EQ(loaded->data.train.labels[i].narrow(0, static_cast<int64_t>(want.size()), 64 - static_cast<int64_t>(want.size()))
                  .ne(-100).sum().item<int64_t>(), 0);
  }
}

// Fine-tuning a Llama folder on Debian's fortunes with its own tokenizer: the loss
// falls, and the saved folder carries the tokenizer and the configs it came with.
TEST(HfTraining, FineTunesOnRawTextWithTheFoldersTokenizer) {
  testing::TempDir dir;
  auto trainer = testing::MakeTrainer(testing::Spec(absl::StrCat(
      "model: {name_or_path: ", Fixture("llama-gqa"), "}\n",
      "data: {train: {path: /usr/share/games/fortunes/cookie, format: text, limit: 300}, max_seq_length: 32}\n",
      "training_args: {output_dir: ", dir / "out", ", max_steps: 40, per_device_train_batch_size: 8, ",
      "learning_rate: 0.003, logging_steps: 10, save_strategy: 'no', do_eval: false}\n")));
  ASSERT_TRUE(trainer->train().ok());
  const std::vector<double> losses = testing::LoggedLosses(*trainer);
  ASSERT_GE(losses.size(), 2u);
  std::printf("fine-tuning llama-gqa on fortunes: loss %.3f -> %.3f over 40 steps\n", losses.front(), losses.back());
  EXPECT_LT(losses.back(), losses.front() - 0.5);
  ASSERT_TRUE(trainer->save_model(dir / "final").ok());
  for (const char* name : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json", "config.json", "model.safetensors"}) {
    EXPECT_TRUE(fs::exists(dir / ("final/" + std::string(name)))) << name;
  }
  EXPECT_EQ(testing::ReadFile(dir / "final/tokenizer.model"), testing::ReadFile(Fixture("llama-gqa/tokenizer.model")));
}

TEST(HfSpec, NameOrPathMakesAnHfModelAndItsFieldsAreChecked) {
  auto problems = [](const std::string& model) {
    auto spec = ParseJobSpec("model: " + model + "\ndata: {train: {path: /usr/share/games/fortunes/cookie}}\n");
    EXPECT_TRUE(spec.ok()) << spec.status();
    ApplyDefaults(&*spec);
    return absl::StrJoin(FindSpecProblems(*spec), "\n");
  };
  EXPECT_THAT(problems("{name_or_path: /no/such/folder}"), HasSubstr("model.name_or_path: no such file: /no/such/folder/config.json"));
  EXPECT_THAT(problems("{type: hf}"), HasSubstr("model.name_or_path: required for an hf model"));
  EXPECT_THAT(problems(absl::StrCat("{name_or_path: ", Fixture("llama-gqa"), ", torch_dtype: float64}")),
              HasSubstr("model.torch_dtype: \"float64\" is not supported"));
  EXPECT_THAT(problems("{type: mlp, torch_dtype: bfloat16}"), HasSubstr("model.torch_dtype: only for model.type hf"));
  EXPECT_THAT(problems(absl::StrCat("{name_or_path: ", Fixture("llama-gqa"), ", max_shard_size: lots}")),
              HasSubstr("model.max_shard_size: not a size such as 5GB"));
  EXPECT_EQ(problems(absl::StrCat("{name_or_path: ", Fixture("llama-gqa"), ", torch_dtype: bfloat16}")), "");
}

}  // namespace
}  // namespace trainerd
