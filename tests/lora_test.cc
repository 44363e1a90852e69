// LoRA adapters against the real peft: tests/fixtures/hf/*-lora* hold adapters written by
// peft 0.10's save_pretrained with the outputs peft computed (see its README). Each
// loads to peft's logits and loss, merges to peft's merge_and_unload weights, and a
// trainerd-saved adapter has peft's names, shapes, dtypes and config keys. Training
// freezes the base bit for bit, resumes exactly, and bad configurations are refused by
// field.
#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spec/memory_estimate.h"
#include "spec/adapter_config.h"
#include "spec/lora_config.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"
#include "tests/hf_test_util.h"
#include "tests/test_util.h"
#include "tests/trainer_test_util.h"
#include "worker/models/adaptable_linear.h"
#include "worker/models/adapters/lora_model.h"
#include "worker/models/hf/hf_weights.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using testing::Fixture;
using testing::ReadTensors;
using testing::TensorSignatures;
namespace fs = std::filesystem;
using nlohmann::json;

json ReadJson(const std::string& path) { return json::parse(testing::ReadFile(path)); }

// The adapter folder `name` on its base, as trainerd builds it for
// model.adapter_name_or_path (peft's config, the architecture's defaults).
std::unique_ptr<Model> LoadAdapter(const std::string& name, bool merge_on_save = false) {
  const std::string dir = Fixture(name);
  const std::string base = Fixture(ReadJson(dir + "/adapter_config.json").at("base_model_name_or_path"));
  absl::StatusOr<trainer::v1::PeftConfig> peft = ReadAdapterConfig(dir);
  EXPECT_TRUE(peft.ok()) << peft.status();
  absl::StatusOr<HfConfig> config = ReadHfConfig(base);
  EXPECT_TRUE(config.ok()) << config.status();
  if (!peft.ok() || !config.ok()) return nullptr;
  trainer::v1::PeftConfig filled = WithLoraDefaults(*peft, config->model_type, IsSequenceClassifier(config->kind));
  filled.set_merge_on_save(merge_on_save);
  absl::StatusOr<std::unique_ptr<Model>> model = CreateLoraModel(testing::Load(base), filled, base);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  absl::Status loaded = LoadAdapterWeights(**model, dir);
  EXPECT_TRUE(loaded.ok()) << loaded;
  return std::move(*model);
}

// The reference batch as the model takes it (BERT: ids and token types stacked).
torch::Tensor Inputs(const std::map<std::string, torch::Tensor>& ref) {
  if (ref.count("token_type_ids")) return torch::stack({ref.at("input_ids"), ref.at("token_type_ids")}, 1);
  return ref.at("input_ids");
}

class LoraFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(LoraFixture, GivesPeftsLogitsLossAndParameterCounts) {
  std::unique_ptr<Model> model = LoadAdapter(GetParam());
  ASSERT_NE(model, nullptr);
  model->SetTraining(false);
  auto ref = ReadTensors(Fixture(GetParam() + "/reference.safetensors"));
  torch::NoGradGuard no_grad;
  torch::Tensor logits = model->Forward(Inputs(ref));
  ASSERT_EQ(logits.sizes(), ref.at("logits").sizes());
  torch::Tensor want = ref.at("logits");
  double loss = 0;
  if (logits.dim() == 3) {  // a causal LM: positions after a row's padding are not compared
    torch::Tensor real = ref.at("attention_mask").to(torch::kBool).unsqueeze(-1).expand_as(logits);
    logits = logits.masked_select(real);
    want = want.masked_select(real);
    const int64_t l = ref.at("labels").size(1);
    loss = torch::nn::functional::cross_entropy(
               model->Forward(Inputs(ref)).narrow(1, 0, l - 1).reshape({-1, ref.at("logits").size(2)}),
               ref.at("labels").narrow(1, 1, l - 1).reshape({-1}),
               torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100))
               .item<double>();
  } else {
    loss = torch::nn::functional::cross_entropy(logits, ref.at("labels")).item<double>();
  }
  const double error = ((logits - want).abs().max() / want.abs().max()).item<double>();
  EXPECT_LT(error, 1e-5);
  EXPECT_NEAR(loss, ref.at("loss").item<double>(), 1e-5 * ref.at("loss").item<double>());
  std::printf("%s: logits within %.2e of peft's, loss %.7f vs %.7f\n", GetParam().c_str(), error, loss,
              ref.at("loss").item<double>());

  // peft's print_trainable_parameters; its "all" counts a copy of each modules_to_save
  // module, which trainerd trains in place.
  const json summary = ReadJson(Fixture("LORA-SUMMARY.json")).at("adapters").at(GetParam());
  EXPECT_EQ(model->NumParameters(), summary.at("trainable").get<int64_t>());
  int64_t copies = 0;
  for (const auto& [name, t] : model->NamedParameters()) {
    if (name.find(".lora_") == std::string::npos) copies += t.numel();
  }
  EXPECT_EQ(model->NumAllParameters() + copies, summary.at("all").get<int64_t>());
}

INSTANTIATE_TEST_SUITE_P(Peft, LoraFixture,
                         ::testing::Values("llama-gqa-lora", "llama-gqa-lora-all-linear", "qwen2-lora", "gpt2-lora",
                                           "llama-seqcls-lora", "bert-seqcls-lora"));

class MergedFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(MergedFixture, EqualsPeftsMergeAndUnload) {
  std::unique_ptr<Model> model = LoadAdapter(GetParam(), /*merge_on_save=*/true);
  ASSERT_NE(model, nullptr);
  std::map<std::string, std::string> files = model->MergedFolderFiles(int64_t{5} << 30);
  ASSERT_EQ(files.count("merged/model.safetensors"), 1u);
  ASSERT_EQ(files.count("merged/config.json"), 1u);
  absl::StatusOr<NamedTensors> merged = DecodeSafetensors(files.at("merged/model.safetensors"));
  ASSERT_TRUE(merged.ok()) << merged.status();
  auto want = ReadTensors(Fixture(GetParam() + "/merged/model.safetensors"));
  ASSERT_EQ(merged->size(), want.size());
  double worst = 0;
  for (const auto& [name, t] : *merged) {
    ASSERT_EQ(want.count(name), 1u) << name;
    ASSERT_EQ(t.sizes(), want.at(name).sizes()) << name;
    EXPECT_EQ(t.scalar_type(), want.at(name).scalar_type()) << name;
    worst = std::max(worst, (t - want.at(name)).abs().max().item<double>());
  }
  EXPECT_LT(worst, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Peft, MergedFixture,
                         ::testing::Values("llama-gqa-lora", "gpt2-lora", "llama-seqcls-lora", "bert-seqcls-lora"));

// A freshly made adapter of each fixture's configuration is saved as peft saved it:
// the same tensor names, dtypes and shapes, the same config keys and targets.
TEST_P(LoraFixture, SavesPeftsFormatAndLoadsBackExactly) {
  std::unique_ptr<Model> loaded = LoadAdapter(GetParam());
  ASSERT_NE(loaded, nullptr);
  const std::string dir = Fixture(GetParam());
  testing::TempDir out;
  const NamedTensors weights = loaded->HfState();
  const std::map<std::string, std::string> files = EncodeWeightFiles(weights, int64_t{5} << 30, loaded->WeightsFilePrefix());
  ASSERT_EQ(files.count("adapter_model.safetensors"), 1u);
  testing::WriteFile(out / "adapter_model.safetensors", files.at("adapter_model.safetensors"));
  EXPECT_EQ(TensorSignatures(out / "adapter_model.safetensors"), TensorSignatures(dir + "/adapter_model.safetensors"));

  const json saved = json::parse(loaded->HfFolderFiles().at("adapter_config.json"));
  const json want = ReadJson(dir + "/adapter_config.json");
  std::set<std::string> saved_keys, want_keys;
  for (const auto& [k, v] : saved.items()) saved_keys.insert(k);
  for (const auto& [k, v] : want.items()) want_keys.insert(k);
  EXPECT_EQ(saved_keys, want_keys);
  for (const char* key : {"r", "lora_alpha", "bias", "fan_in_fan_out", "use_rslora", "task_type", "modules_to_save"}) {
    EXPECT_EQ(saved.at(key), want.at(key)) << key;
  }
  auto names = [](const json& list) { return std::set<std::string>(list.begin(), list.end()); };
  EXPECT_EQ(names(saved.at("target_modules")), names(want.at("target_modules")));
  EXPECT_EQ(loaded->HfFolderFiles().count("config.json"), 0u);

  // Loading the saved file gives the same tensors.
  testing::WriteFile(out / "adapter_config.json", loaded->HfFolderFiles().at("adapter_config.json"));
  std::unique_ptr<Model> again = LoadAdapter(GetParam());
  ASSERT_TRUE(LoadAdapterWeights(*again, out.path().string()).ok());
  testing::ExpectSameTensors(again->NamedParameters(), weights);
}

// peft's initialisation (init_lora_weights: true): B is zero, so a new adapter computes
// exactly what the base does, bit for bit; A is Kaiming-uniform (|A| <= 1/sqrt(in)).
TEST(LoraInit, ANewAdapterComputesExactlyTheBase) {
  const std::string base = Fixture("llama-gqa");
  std::unique_ptr<Model> plain = testing::Load(base);
  ASSERT_NE(plain, nullptr);
  auto ref = ReadTensors(Fixture("llama-gqa/reference.safetensors"));
  torch::NoGradGuard no_grad;
  plain->SetTraining(false);
  const torch::Tensor want = plain->Forward(ref.at("input_ids"));
  absl::StatusOr<std::unique_ptr<Model>> lora =
      CreateLoraModel(testing::Load(base), WithLoraDefaults({}, "llama", false), base);
  ASSERT_TRUE(lora.ok()) << lora.status();
  (*lora)->SetTraining(false);
  EXPECT_TRUE(torch::equal((*lora)->Forward(ref.at("input_ids")), want));
  for (const auto& [name, t] : (*lora)->NamedParameters()) {
    if (name.find("lora_B") != std::string::npos) EXPECT_EQ(t.abs().max().item<double>(), 0.0) << name;
    if (name.find("lora_A") != std::string::npos) {
      EXPECT_LE(t.abs().max().item<double>(), 1.0 / std::sqrt(64.0)) << name;
      EXPECT_GT(t.abs().max().item<double>(), 0.5 / std::sqrt(64.0)) << name;
    }
  }
}

// The layers the validator reasons about (torch-free, from config.json) are exactly the
// worker's modules, so that what trainerd accepts at submission is what runs.
TEST(LoraTargets, ConfigLayersAreTheModelsLinearLayers) {
  for (const char* name : {"llama-gqa", "llama-tied", "qwen2", "mistral", "gpt2", "llama-seqcls", "bert-seqcls"}) {
    absl::StatusOr<HfConfig> config = ReadHfConfig(Fixture(name));
    ASSERT_TRUE(config.ok()) << config.status();
    std::unique_ptr<Model> model = testing::Load(Fixture(name));
    ASSERT_NE(model, nullptr);
    std::vector<std::string> want, got;
    for (const HfLinearLayer& l : HfLinearLayers(*config)) want.push_back(absl::StrCat(l.name, " ", l.in, "x", l.out, l.bias));
    for (const LinearLayer& l : model->LinearLayers()) {
      got.push_back(absl::StrCat(l.name, " ", l.layer->in_features(), "x", l.layer->out_features(),
                                 l.layer->bias.defined()));
    }
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, want) << name;
    EXPECT_EQ(HfParameterCount(*config), model->NumParameters()) << name;
  }
}

TEST(LoraTargets, MatchAsPeftMatches) {
  absl::StatusOr<HfConfig> gpt2 = ReadHfConfig(Fixture("gpt2"));
  ASSERT_TRUE(gpt2.ok());
  trainer::v1::PeftConfig peft = WithLoraDefaults({}, "gpt2", false);
  peft.clear_target_modules();
  peft.add_target_modules("c_proj");  // a suffix: attn.c_proj and mlp.c_proj
  auto chosen = SelectLoraTargets(peft, HfLinearLayers(*gpt2));
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  EXPECT_EQ(chosen->size(), 2u * gpt2->num_hidden_layers);
  peft.add_layers_to_transform(1);
  EXPECT_EQ(SelectLoraTargets(peft, HfLinearLayers(*gpt2))->size(), 2u);

  absl::StatusOr<HfConfig> llama = ReadHfConfig(Fixture("llama-gqa"));
  trainer::v1::PeftConfig regex = WithLoraDefaults({}, "llama", false);
  regex.clear_target_modules();
  regex.set_target_modules_regex(R"(.*\.1\.self_attn\.(q|k)_proj)");
  auto two = SelectLoraTargets(regex, HfLinearLayers(*llama));
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[0].name, "model.layers.1.self_attn.q_proj");
  regex.set_target_modules_regex("all-linear");
  EXPECT_EQ(SelectLoraTargets(regex, HfLinearLayers(*llama))->size(), 7u * llama->num_hidden_layers);  // no lm_head
  EXPECT_EQ(WithLoraDefaults({}, "bert", true).modules_to_save(0), "classifier");
}

std::string LoraYaml(const std::string& out, const std::string& data, const std::string& extra = "") {
  return absl::StrCat("model: {name_or_path: ", Fixture("llama-gqa"), "}\n",
                      "data: {train: {path: ", data, "}, max_seq_length: 16}\n",
                      "peft: {r: 8, lora_alpha: 16, target_modules: [q_proj, k_proj, v_proj, o_proj]}\n",
                      "training_args: {output_dir: ", out, ", max_steps: 30, per_device_train_batch_size: 4, "
                      "learning_rate: 0.01, logging_steps: 5, save_steps: 15, do_eval: false", extra, "}\n");
}

TEST(LoraTraining, TrainsOnlyTheAdaptersResumesExactlyAndSavesAPeftFolder) {
  testing::TempDir dir;
  testing::WriteTokenRows(dir / "train.jsonl", 60, 7);
  auto trainer = testing::MakeTrainer(testing::Spec(LoraYaml(dir / "out", dir / "train.jsonl")));
  Model& model = trainer->model();
  for (const auto& [name, t] : model.NamedParameters()) EXPECT_THAT(name, HasSubstr(".lora_")) << name;
  EXPECT_EQ(model.NumParameters(), 2 * 8 * (64 * 4 + 64 + 32 + 32 + 64));
  NamedTensors frozen_before;
  for (const auto& [name, t] : model.FrozenState()) frozen_before.emplace_back(name, t.clone());
  ASSERT_TRUE(trainer->train().ok());
  const std::vector<double> losses = testing::LoggedLosses(*trainer);
  ASSERT_GE(losses.size(), 2u);
  std::printf("LoRA on llama-gqa: loss %.3f -> %.3f over 30 steps\n", losses.front(), losses.back());
  EXPECT_LT(losses.back(), losses.front() - 0.1);
  // The base is bit for bit what it was, and has no gradients.
  testing::ExpectSameTensors(frozen_before, model.FrozenState());
  for (const auto& [name, t] : model.FrozenState()) EXPECT_FALSE(t.grad().defined()) << name;

  // Checkpoints hold the adapter and not the base.
  const fs::path checkpoint = dir / "out/checkpoint-15";
  EXPECT_TRUE(fs::exists(checkpoint / "adapter_model.safetensors"));
  EXPECT_TRUE(fs::exists(checkpoint / "adapter_config.json"));
  EXPECT_FALSE(fs::exists(checkpoint / "model.safetensors"));
  EXPECT_TRUE(fs::exists(checkpoint / "optimizer.pt"));

  // Resumed from checkpoint-15, the adapters end bit-identical.
  auto resumed = testing::MakeTrainer(testing::Spec(LoraYaml(
      dir / "out", dir / "train.jsonl", absl::StrCat(", resume_from_checkpoint: ", checkpoint.string()))));
  ASSERT_TRUE(resumed->train().ok());
  testing::ExpectSameTensors(model.NamedParameters(), resumed->model().NamedParameters());

  // The final folder is a peft adapter folder, and starting from it gives these weights.
  ASSERT_TRUE(trainer->save_model(dir / "final").ok());
  EXPECT_TRUE(fs::exists(dir / "final/adapter_model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "final/model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "final/model_state_dict.pt"));
  EXPECT_FALSE(fs::exists(dir / "final/config.json"));
  EXPECT_EQ(ReadJson(dir / "final/adapter_config.json").at("base_model_name_or_path"), Fixture("llama-gqa"));
  auto continued = testing::MakeTrainer(testing::Spec(absl::StrCat(
      "model: {name_or_path: ", Fixture("llama-gqa"), ", adapter_name_or_path: ", dir / "final", "}\n",
      "data: {train: {path: ", dir / "train.jsonl", "}, max_seq_length: 16}\n",
      "training_args: {output_dir: ", dir / "again", ", max_steps: 1, do_eval: false}\n")));
  testing::ExpectSameTensors(model.NamedParameters(), continued->model().NamedParameters());
}

// A trainer-worker killed (SIGKILL) after a checkpoint and started again with
// resume_from_checkpoint: true ends with the adapters of an uninterrupted run, bit for bit.
TEST(LoraTraining, AKilledWorkerResumesToBitIdenticalAdapters) {
  testing::TempDir dir;
  testing::WriteTokenRows(dir / "train.jsonl", 60, 7);
  testing::WriteFile(dir / "job.yaml", absl::StrCat(
      "model: {name_or_path: ", Fixture("llama-gqa"), "}\n",
      "data: {train: {path: ", dir / "train.jsonl", "}, max_seq_length: 16}\n",
      "peft: {r: 8, lora_alpha: 16, lora_dropout: 0.1}\n",
      "training_args: {max_steps: 300, per_device_train_batch_size: 4, learning_rate: 0.01, logging_steps: 50, ",
      "save_steps: 10, save_total_limit: 2, do_eval: false, torch_num_threads: 1}\n"));
  const std::string worker = testing::BuildDir() + "/worker/trainer-worker --spec " + dir / "job.yaml";
  auto straight = testing::RunCommand(worker + " --set training_args.output_dir=" + dir / "straight");
  ASSERT_EQ(straight.exit_code, 0) << straight.output;
  // Killed once its first checkpoint is on disk, then resumed.
  const std::string killed = dir / "killed";
  auto run = testing::RunCommand(absl::StrCat(
      worker, " --set training_args.output_dir=", killed, " > ", dir / "killed.log", " 2>&1 & p=$!; ",
      "i=0; while [ ! -d ", killed, "/checkpoint-10 ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done; ",
      "kill -9 $p; wait $p; echo status $?"));
  EXPECT_THAT(run.output, HasSubstr("status 137")) << "the worker ended before it was killed";
  auto resumed = testing::RunCommand(worker + " --set training_args.output_dir=" + killed +
                                     " --set training_args.resume_from_checkpoint=true");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("Resuming from"));
  const auto a = ReadTensors(dir / "straight/adapter_model.safetensors");
  const auto b = ReadTensors(killed + "/adapter_model.safetensors");
  ASSERT_EQ(a.size(), 8u);  // A and B of q_proj and v_proj in two layers
  ASSERT_EQ(b.size(), a.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
}

TEST(LoraTraining, GradientCheckpointingGivesTheAdaptersTheSameGradients) {
  testing::TempDir dir;
  testing::WriteTokenRows(dir / "train.jsonl", 20, 7);
  std::vector<NamedTensors> grads;
  for (bool checkpointing : {false, true}) {
    auto trainer = testing::MakeTrainer(testing::Spec(LoraYaml(dir / "out", dir / "train.jsonl")));
    ASSERT_TRUE(trainer->model().SetGradientCheckpointing(checkpointing));
    auto loader = trainer->get_train_dataloader();
    loader->StartEpoch(0);
    std::optional<Batch> batch = loader->Next();
    ASSERT_TRUE(batch.has_value());
    trainer->training_step(trainer->model(), *batch, std::nullopt);
    NamedTensors g;
    for (const auto& [name, p] : trainer->model().NamedParameters()) {
      ASSERT_TRUE(p.grad().defined()) << name << (checkpointing ? " with" : " without") << " checkpointing";
      g.emplace_back(name, p.grad().clone());
    }
    grads.push_back(g);
  }
  for (size_t k = 0; k < grads[0].size(); ++k) {
    EXPECT_TRUE(torch::allclose(grads[0][k].second, grads[1][k].second, 1e-5, 1e-7)) << grads[0][k].first;
  }
}

TEST(LoraTraining, AdaptersStayFloat32OnABfloat16BaseWithNeftune) {
  testing::TempDir dir;
  testing::WriteTokenRows(dir / "train.jsonl", 20, 7);
  std::string yaml = LoraYaml(dir / "out", dir / "train.jsonl", ", max_steps: 2, bf16: true, neftune_noise_alpha: 5");
  yaml.replace(yaml.find("max_steps: 30, "), 15, "");
  auto spec = testing::Spec(yaml, {"model.torch_dtype=bfloat16"});
  auto trainer = testing::MakeTrainer(spec);
  for (const auto& [name, t] : trainer->model().NamedParameters()) EXPECT_EQ(t.scalar_type(), torch::kFloat) << name;
  for (const auto& [name, t] : trainer->model().FrozenState()) EXPECT_EQ(t.scalar_type(), torch::kBFloat16) << name;
  ASSERT_TRUE(trainer->train().ok());
  EXPECT_TRUE(std::isfinite(trainer->state().log_history.back().at("train_loss")));
}

// save_total_limit and load_best_model_at_end work on adapter checkpoints: the best one
// is kept and its adapter is what the run ends with.
TEST(LoraTraining, TheBestAdapterCheckpointIsKeptAndLoadedAtEnd) {
  testing::TempDir dir;
  testing::WriteTokenRows(dir / "train.jsonl", 80, 7);
  std::string yaml = LoraYaml(dir / "out", dir / "train.jsonl",
                              ", eval_strategy: steps, eval_steps: 5, save_total_limit: 1, "
                              "load_best_model_at_end: true, learning_rate: 0.2");
  auto replace = [&yaml](const std::string& from, const std::string& to) { yaml.replace(yaml.find(from), from.size(), to); };
  replace("learning_rate: 0.01, ", "");
  replace("save_steps: 15", "save_steps: 5");
  replace("do_eval: false", "do_eval: true");
  replace("max_seq_length: 16}", "max_seq_length: 16, eval_split: 0.25}");
  auto trainer = testing::MakeTrainer(testing::Spec(yaml));
  ASSERT_TRUE(trainer->train().ok());
  ASSERT_TRUE(trainer->state().best_model_checkpoint.has_value());
  const std::string best = *trainer->state().best_model_checkpoint;
  EXPECT_TRUE(fs::exists(best + "/adapter_model.safetensors")) << best;
  const auto saved = ReadTensors(best + "/adapter_model.safetensors");
  for (const auto& [name, t] : trainer->model().NamedParameters()) {
    ASSERT_EQ(saved.count(name), 1u) << name;
    EXPECT_TRUE(torch::equal(saved.at(name), t)) << name;
  }
}

// Each architecture's adapters learn: pre-tokenized rows for the causal LMs (adapters on
// every linear layer: these random models must learn a lookup of random sequences),
// labelled rows for the classifiers (peft's default targets; their heads train in full,
// as modules_to_save).
struct LearnCase {
  const char* model;
  const char* peft;
  double learning_rate;
};

class LoraLearns : public ::testing::TestWithParam<LearnCase> {};

TEST_P(LoraLearns, LossFalls) {
  const LearnCase& c = GetParam();
  testing::TempDir dir;
  const bool classifier = std::string(c.model).find("seqcls") != std::string::npos;
  if (classifier) {
    testing::WriteLabelledTokenRows(dir / "train.jsonl", 60, 7);
  } else {
    testing::WriteTokenRows(dir / "train.jsonl", 60, 7);
  }
  auto trainer = testing::MakeTrainer(testing::Spec(absl::StrCat(
      "model: {name_or_path: ", Fixture(c.model), "}\n",
      "data: {train: {path: ", dir / "train.jsonl", classifier ? ", label_field: label" : "",
      "}, max_seq_length: 16}\n",
      "peft: ", c.peft, "\n",
      "training_args: {output_dir: ", dir / "out", ", max_steps: 60, per_device_train_batch_size: 4, "
      "learning_rate: ", c.learning_rate, ", logging_steps: 10, save_strategy: 'no', do_eval: false}\n")));
  ASSERT_TRUE(trainer->train().ok());
  const std::vector<double> losses = testing::LoggedLosses(*trainer);
  ASSERT_GE(losses.size(), 2u);
  std::printf("LoRA on %s: loss %.3f -> %.3f over 60 steps\n", c.model, losses.front(), losses.back());
  EXPECT_LT(losses.back(), classifier ? 0.85 * losses.front() : losses.front() - 0.2);
}

constexpr char kAllLinear[] = "{r: 8, lora_alpha: 16, target_modules: all-linear}";
constexpr char kDefaultTargets[] = "{r: 8, lora_alpha: 16}";
INSTANTIATE_TEST_SUITE_P(Architectures, LoraLearns,
                         ::testing::Values(LearnCase{"llama-gqa", kAllLinear, 0.01}, LearnCase{"mistral", kAllLinear, 0.01},
                                           LearnCase{"qwen2", kAllLinear, 0.01}, LearnCase{"gpt2", kAllLinear, 0.01},
                                           LearnCase{"llama-seqcls", kDefaultTargets, 0.01},
                                           LearnCase{"bert-seqcls", kDefaultTargets, 0.03}));

std::string Problems(const std::string& yaml) {
  auto spec = ParseJobSpec(yaml);
  if (!spec.ok()) return std::string(spec.status().message());
  ApplyDefaults(&*spec);
  SpecCheckOptions options;
  options.check_files = true;
  return absl::StrJoin(FindSpecProblems(*spec, options), "\n");
}

TEST(LoraSpec, BadConfigurationsAreRefusedByField) {
  testing::TempDir dir;
  testing::WriteTokenRows(dir / "train.jsonl", 20, 7);
  const std::string base = LoraYaml(dir / "out", dir / "train.jsonl");
  auto with = [&](const std::string& from, const std::string& to) {
    std::string yaml = base;
    yaml.replace(yaml.find(from), from.size(), to);
    return Problems(yaml);
  };
  EXPECT_EQ(Problems(base), "");
  EXPECT_THAT(with("r: 8", "r: 8, alpha: 3"), HasSubstr("peft.alpha: unknown field"));
  EXPECT_THAT(with("r: 8", "r: 0"), HasSubstr("peft.r: must be > 0"));
  EXPECT_THAT(with("r: 8", "r: eight"), HasSubstr("peft.r: expected an integer"));
  EXPECT_THAT(with("[q_proj, k_proj, v_proj, o_proj]", "[query]"),
              HasSubstr("peft.target_modules: matches none of the model's linear layers (down_proj, gate_proj, "
                        "k_proj, lm_head, o_proj, q_proj, up_proj, v_proj"));
  EXPECT_THAT(with("[q_proj, k_proj, v_proj, o_proj]", "'(unclosed'"), HasSubstr("peft.target_modules: not a regular"));
  EXPECT_THAT(with("r: 8", "r: 8, peft_type: IA3"), HasSubstr("peft.peft_type: \"IA3\" is not supported; LORA is"));
  EXPECT_THAT(with("r: 8", "r: 8, bias: some"), HasSubstr("peft.bias: \"some\" is not supported"));
  EXPECT_THAT(with("do_eval: false", "do_eval: false, optim: galore_adamw, optim_target_modules: [attn]"),
              HasSubstr("training_args.optim: galore_adamw projects the gradients of full weights"));
  EXPECT_THAT(with("r: 8", "r: 8, task_type: SEQ_CLS"), HasSubstr("peft.task_type: SEQ_CLS, and the model is a causal LM"));
  EXPECT_THAT(Problems(absl::StrCat("model: {type: gpt}\ndata: {train: {path: ", testing::SourceDir(),
                                    "/examples/data/sentences.jsonl}}\npeft: {r: 4}\n")),
              HasSubstr("peft: LoRA adapts a pretrained hf model"));
  EXPECT_THAT(with("}\ndata:", ", adapter_name_or_path: " + dir.path().string() + "}\ndata:"),
              HasSubstr("peft: model.adapter_name_or_path's adapter_config.json sets the adapter"));
}

// The daemon's admission estimate counts the trainable parameters' gradients and
// optimizer state: a LoRA job of a model too big to fine-tune in full fits.
TEST(LoraSpec, MemoryEstimateCountsOnlyTrainableState) {
  testing::TempDir dir;
  testing::WriteTokenRows(dir / "train.jsonl", 20, 7);
  auto spec = testing::Spec(LoraYaml(dir / "out", dir / "train.jsonl"));
  absl::StatusOr<HfConfig> config = ReadHfConfig(Fixture("llama-gqa"));
  ASSERT_TRUE(config.ok());
  absl::StatusOr<int64_t> trainable = LoraTrainableParameterCount(WithLoraDefaults(spec.peft(), "llama", false), *config);
  ASSERT_TRUE(trainable.ok());
  const int64_t lora = EstimateHfJobMemoryBytes(spec, *config, *trainable);
  const int64_t full = EstimateHfJobMemoryBytes(spec, *config, HfParameterCount(*config));
  std::printf("llama-gqa: estimate %lld bytes full, %lld with LoRA\n", static_cast<long long>(full),
              static_cast<long long>(lora));
  EXPECT_LT(lora, full);
  SpecCheckOptions options;
  options.check_files = true;
  options.policy.limits.max_job_memory_bytes = (lora + full) / 2;
  auto with_lora = testing::Spec(LoraYaml(dir / "out", dir / "train.jsonl"));
  EXPECT_TRUE(FindSpecProblems(with_lora, options).empty());
  with_lora.clear_peft();
  EXPECT_THAT(absl::StrJoin(FindSpecProblems(with_lora, options), "\n"), HasSubstr("model: the job would need about"));
}

}  // namespace
}  // namespace trainerd
