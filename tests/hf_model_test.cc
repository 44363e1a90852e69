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
#include "tests/hf_test_util.h"
#include "tests/test_util.h"
#include "worker/models/safetensors.h"
#include "spec/hf_config.h"
#include "worker/models/hf/hf_model_loader.h"
#include "worker/models/hf/hf_weights.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using testing::ConfigKeys;
using testing::Fixture;
using testing::Load;
using testing::ReadTensors;
using testing::TensorSignatures;
namespace fs = std::filesystem;

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
    if (has) {
      EXPECT_EQ(files.at(name), testing::ReadFile(Fixture(GetParam() + "/" + name))) << name;
    }
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

}  // namespace
}  // namespace trainerd
