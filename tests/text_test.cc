// Text: the sentencepiece tokenizer, text and JSONL datasets, LM packing and padding,
// the GPT decoder and text classifier, and a small language model trained on the
// fortunes Debian ships.
#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"
#include "tests/test_util.h"
#include "tests/trainer_test_util.h"
#include "worker/data/dataset_reader.h"
#include "worker/data/sentencepiece_model.h"
#include "worker/data/text_dataset.h"
#include "worker/trainer/trainer.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using testing::MakeTrainer;
using testing::Spec;
using testing::TempDir;

constexpr char kFortunes[] = "/usr/share/games/fortunes/cookie";

TEST(Tokenizer, TrainsEncodesDecodesAndReloadsFromItsBytes) {
  trainer::v1::DatasetSource source;
  source.set_path(kFortunes);
  source.set_format("text");
  auto examples = ReadTextExamples(source);
  ASSERT_TRUE(examples.ok()) << examples.status();
  std::vector<std::string> sentences;
  for (const auto& e : *examples) sentences.push_back(e.text);
  std::string error;
  auto tokenizer = SentencePieceModel::Train(sentences, 500, "unigram", 1, &error);
  ASSERT_NE(tokenizer, nullptr) << error;
  EXPECT_EQ(tokenizer->vocab_size(), 500);
  EXPECT_EQ(tokenizer->pad_id(), 3);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  const std::string text = "A fortune cookie says hello.";
  std::vector<int> ids = tokenizer->Encode(text);
  EXPECT_GT(ids.size(), 3u);
  EXPECT_EQ(tokenizer->Decode(ids), text);
  auto reloaded = SentencePieceModel::FromSerialized(tokenizer->Serialized(), &error);
  ASSERT_NE(reloaded, nullptr) << error;
  EXPECT_EQ(reloaded->Encode(text), ids);
  // Python's sentencepiece loads the saved tokenizer.model and encodes the same way.
  TempDir dir;
  testing::WriteFile(dir / "tokenizer.model", tokenizer->Serialized());
  auto python = testing::RunCommand(absl::StrCat(
      "/usr/bin/python3 -c 'import sentencepiece as s; print(*s.SentencePieceProcessor(model_file=\"",
      dir / "tokenizer.model", "\").encode(\"", text, "\"))'"));
  ASSERT_EQ(python.exit_code, 0) << python.output;
  EXPECT_EQ(python.output, absl::StrCat(absl::StrJoin(ids, " "), "\n"));
  // The same text trains the same tokenizer (every rank of a job trains its own).
  auto again = SentencePieceModel::Train(sentences, 500, "unigram", 1, &error);
  EXPECT_EQ(again->Serialized(), tokenizer->Serialized());
  EXPECT_EQ(SentencePieceModel::FromSerialized("not a model", &error), nullptr);
  EXPECT_FALSE(error.empty());
}

TEST(TextData, ReadsFortunesAndJsonlAndNamesBadRecords) {
  TempDir dir;
  testing::WriteFile(dir / "a.txt", "first line\nstill first\n%\nsecond\n\n\nthird\n%\n");
  trainer::v1::DatasetSource text;
  text.set_path(dir / "a.txt");
  auto docs = ReadTextExamples(text);
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 3u);
  EXPECT_EQ((*docs)[0].text, "first line\nstill first");

  testing::WriteFile(dir / "b.jsonl", "{\"review\": \"good\", \"stars\": 5}\n\n{\"review\": \"bad\", \"stars\": 1}\n");
  trainer::v1::DatasetSource jsonl;
  jsonl.set_path(dir / "b.jsonl");
  jsonl.set_text_field("review");
  jsonl.set_label_field("stars");
  auto records = ReadTextExamples(jsonl);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[1].label, "1");

  testing::WriteFile(dir / "c.jsonl", "{\"review\": \"good\"}\n{\"text\": 3}\n");
  jsonl.set_path(dir / "c.jsonl");
  auto bad = ReadTextExamples(jsonl);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("c.jsonl:1: no field \"stars\" (label_field)"));
}

std::string LmYaml(const std::string& output_dir, int64_t steps) {
  return absl::StrCat(R"(
training_args:
  output_dir: )", output_dir, R"(
  max_steps: )", steps, R"(
  per_device_train_batch_size: 16
  per_device_eval_batch_size: 32
  learning_rate: 3.0e-3
  lr_scheduler_type: cosine
  warmup_steps: 10
  logging_steps: 1000
  save_strategy: 'no'
  torch_num_threads: 2
model: {type: gpt, hidden_size: 64, num_layers: 2, num_heads: 4}
data:
  train: {path: )", kFortunes, R"(, format: text}
  eval_split: 0.1
  max_seq_length: 32
  tokenizer: {vocab_size: 1000}
metrics: [perplexity, token_accuracy]
)");
}

TEST(Gpt, PacksBlocksIsCausalAndExportsTheSameFunction) {
  TempDir dir;
  auto trainer = MakeTrainer(Spec(LmYaml(dir / "out", 1)));
  const Dataset& train = trainer->data().train;
  ASSERT_EQ(train.inputs.size(1), 32);
  EXPECT_TRUE(torch::equal(train.inputs, train.labels));  // labels are the inputs
  EXPECT_TRUE(trainer->data().causal_lm);

  Model& model = trainer->model();
  model.SetTraining(false);
  torch::NoGradGuard no_grad;
  torch::Tensor ids = train.inputs.slice(0, 0, 2);
  torch::Tensor logits = model.Forward(ids);
  ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{2, 32, trainer->data().vocab_size}));
  // Changing the last token changes no earlier position's prediction.
  torch::Tensor changed = ids.clone();
  changed.select(1, 31).fill_(5);
  torch::Tensor other = model.Forward(changed);
  EXPECT_TRUE(torch::allclose(other.slice(1, 0, 31), logits.slice(1, 0, 31), 1e-5, 1e-5));
  EXPECT_FALSE(torch::allclose(other.select(1, 31), logits.select(1, 31)));

  std::stringstream script;
  model.SaveTorchScript(script);
  torch::jit::Module loaded = torch::jit::load(script);
  torch::Tensor exported = loaded.forward({ids}).toTensor();
  EXPECT_TRUE(torch::allclose(exported, logits, 1e-4, 1e-4));
}

// The perplexity of a unigram model (token frequencies of the training blocks, add-one
// smoothed) on the eval blocks: what a language model must beat.
double UnigramPerplexity(const DatasetBundle& data) {
  torch::Tensor counts = torch::bincount(data.train.inputs.flatten(), {}, data.vocab_size).to(torch::kDouble) + 1;
  torch::Tensor log_p = (counts / counts.sum()).log();
  torch::Tensor eval_tokens = data.eval->inputs.slice(1, 1).flatten();
  return std::exp(-log_p.index_select(0, eval_tokens).mean().item<double>());
}

TEST(Gpt, LearnsFortunesFarBelowTheUnigramPerplexity) {
  TempDir dir;
  auto trainer = MakeTrainer(Spec(LmYaml(dir / "out", 400)));
  const double unigram = UnigramPerplexity(trainer->data());
  auto out = trainer->train();
  ASSERT_TRUE(out.ok()) << out.status();
  auto eval = trainer->evaluate();
  ASSERT_TRUE(eval.ok()) << eval.status();
  std::printf("unigram perplexity %.1f, GPT after 400 steps %.1f, token accuracy %.3f\n", unigram,
              eval->at("eval_perplexity"), eval->at("eval_token_accuracy"));
  EXPECT_LT(eval->at("eval_perplexity"), 0.75 * unigram);
  EXPECT_NEAR(eval->at("eval_perplexity"), std::exp(eval->at("eval_loss")), 1e-6 * unigram);
  EXPECT_GT(eval->at("eval_token_accuracy"), 0.08);

  // The tokenizer is saved with the model, and loads back.
  ASSERT_TRUE(trainer->save_model(dir / "model").ok());
  std::string error;
  auto tokenizer = SentencePieceModel::FromSerialized(testing::ReadFile(dir / "model/tokenizer.model"), &error);
  ASSERT_NE(tokenizer, nullptr) << error;
  EXPECT_EQ(tokenizer->vocab_size(), trainer->data().vocab_size);
}

TEST(Neftune, NoiseHasHfScaleInTrainingOnlyAndIsGoneAfterTrain) {
  TempDir dir;
  auto spec = Spec(LmYaml(dir / "out", 3));
  spec.mutable_training_args()->set_neftune_noise_alpha(5);
  auto trainer = MakeTrainer(spec);
  Model& model = trainer->model();
  torch::Tensor ids = trainer->data().train.inputs.slice(0, 0, 8);
  torch::NoGradGuard no_grad;
  model.SetTraining(false);
  torch::Tensor clean = model.InputEmbeddings(ids);
  ASSERT_TRUE(model.SetNeftuneNoiseAlpha(5));
  EXPECT_TRUE(torch::equal(model.InputEmbeddings(ids), clean));  // evaluation: no noise
  model.SetTraining(true);
  torch::Tensor noise = model.InputEmbeddings(ids) - clean;
  // Uniform in [-m, m] with m = alpha / sqrt(L x d) = 5 / sqrt(32 x 64).
  const double m = 5.0 / std::sqrt(32.0 * 64.0);
  EXPECT_LE(noise.abs().max().item<double>(), m * 1.0001);
  EXPECT_GE(noise.abs().max().item<double>(), m * 0.99);
  EXPECT_NEAR(noise.std().item<double>(), m / std::sqrt(3.0), 0.02 * m);
  model.SetNeftuneNoiseAlpha(0);

  // train() turns it on for training only, and off when it ends.
  torch::GradMode::set_enabled(true);
  ASSERT_TRUE(trainer->train().ok());
  torch::NoGradGuard again;
  model.SetTraining(true);
  EXPECT_TRUE(torch::equal(model.InputEmbeddings(ids), model.InputEmbeddings(ids)));
}

TEST(GradientCheckpointing, RecomputingGivesTheSameGradients) {
  TempDir dir;
  auto spec = Spec(LmYaml(dir / "out", 1));
  spec.mutable_model()->set_dropout(0.1);  // the replay must draw the same dropout masks
  auto trainer = MakeTrainer(spec);
  Model& model = trainer->model();
  model.SetTraining(true);
  torch::Tensor ids = trainer->data().train.inputs.slice(0, 0, 4);
  auto gradients = [&](bool checkpointing) {
    model.SetGradientCheckpointing(checkpointing);
    for (torch::Tensor& p : model.Parameters()) p.mutable_grad() = torch::Tensor();
    torch::manual_seed(7);
    torch::Tensor loss = model.Forward(ids).pow(2).mean();
    loss.backward();
    std::vector<torch::Tensor> out;
    for (const torch::Tensor& p : model.Parameters()) out.push_back(p.grad().clone());
    return std::make_pair(loss.item<double>(), out);
  };
  auto [plain_loss, plain] = gradients(false);
  auto [checkpointed_loss, checkpointed] = gradients(true);
  EXPECT_DOUBLE_EQ(plain_loss, checkpointed_loss);
  ASSERT_EQ(plain.size(), checkpointed.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_TRUE(torch::allclose(plain[i], checkpointed[i], 1e-5, 1e-6)) << "parameter " << i;
  }
}

TEST(TorchCompile, TrainsTheSameThroughTheGraphExecutor) {
  TempDir dir;
  auto losses = [&](bool compile) {
    auto spec = Spec(LmYaml(dir / (compile ? "compiled" : "eager"), 6));
    spec.mutable_training_args()->set_torch_compile(compile);
    spec.mutable_training_args()->set_logging_steps(1);
    auto trainer = MakeTrainer(spec);
    EXPECT_TRUE(trainer->train().ok());
    return testing::LoggedLosses(*trainer);
  };
  std::vector<double> eager = losses(false), compiled = losses(true);
  ASSERT_EQ(eager.size(), 6u);
  ASSERT_EQ(compiled.size(), 6u);
  for (size_t i = 0; i < eager.size(); ++i) EXPECT_NEAR(compiled[i], eager[i], 1e-4) << "step " << i + 1;

  // Its graph has no dropout: a spec asking for both is refused, naming the field.
  auto spec = ParseJobSpec(LmYaml(dir / "x", 1), {"training_args.torch_compile=true", "model.dropout=0.1"});
  ASSERT_TRUE(spec.ok());
  ApplyDefaults(&*spec);
  EXPECT_THAT(std::string(ValidateJobSpec(*spec).message()),
              HasSubstr("training_args.torch_compile: the compiled graph has no dropout"));
}

TEST(TextClassifier, LearnsLabelsFromJsonl) {
  TempDir dir;
  // Two classes told apart by their words.
  std::string lines;
  for (int i = 0; i < 200; ++i) {
    lines += i % 2 ? absl::StrCat("{\"text\": \"the cat sat on the mat number ", i, "\", \"label\": \"cat\"}\n")
                   : absl::StrCat("{\"text\": \"a dog ran in the park with ball ", i, "\", \"label\": \"dog\"}\n");
  }
  testing::WriteFile(dir / "pets.jsonl", lines);
  auto trainer = MakeTrainer(Spec(absl::StrCat(R"(
training_args: {max_steps: 40, per_device_train_batch_size: 16, learning_rate: 3.0e-3, logging_steps: 1000,
                save_strategy: 'no', output_dir: )", dir / "out", R"(}
model: {type: text_classifier, hidden_size: 32, num_layers: 1, num_heads: 2}
data:
  train: {path: )", dir / "pets.jsonl", R"(, label_field: label}
  eval_split: 0.2
  max_seq_length: 64
  tokenizer: {vocab_size: 60}
metrics: [accuracy]
)")));
  EXPECT_EQ(trainer->data().num_classes, 2);
  EXPECT_EQ(trainer->data().class_names, (std::vector<std::string>{"cat", "dog"}));
  // Batches are cut to their longest text: the last column holds a real token.
  auto loader = trainer->get_train_dataloader();
  loader->StartEpoch(0);
  std::optional<Batch> batch = loader->Next();
  ASSERT_TRUE(batch.has_value());
  EXPECT_LT(batch->inputs.size(1), 64);
  EXPECT_TRUE(batch->inputs.select(1, batch->inputs.size(1) - 1).ne(trainer->data().pad_id).any().item<bool>());
  ASSERT_TRUE(trainer->train().ok());
  auto eval = trainer->evaluate();
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_GT(eval->at("eval_accuracy"), 0.95);

  // A LlamaForSequenceClassification: its folder says so, and model.pt computes the same
  // logits (the score of each text's last token before the padding).
  Model& model = trainer->model();
  EXPECT_THAT(model.HfFolderFiles().at("config.json"), HasSubstr("LlamaForSequenceClassification"));
  model.SetTraining(false);
  torch::NoGradGuard no_grad;
  torch::Tensor logits = model.Forward(batch->inputs);
  std::stringstream script;
  model.SaveTorchScript(script);
  torch::jit::Module loaded = torch::jit::load(script);
  EXPECT_TRUE(torch::allclose(loaded.forward({batch->inputs}).toTensor(), logits, 1e-4, 1e-4));
}

TEST(Gpt, CheckpointsOfEarlierVersionsLoadUnderLlamaNames) {
  TempDir dir;
  auto trainer = MakeTrainer(Spec(LmYaml(dir / "out", 1)));
  Model& model = trainer->model();
  // The names the built-in decoder had before it became a Llama configuration.
  const NamedTensors hf = model.HfState();
  std::map<std::string, torch::Tensor> state(hf.begin(), hf.end()), legacy;
  legacy["embedding_weight"] = state.at("model.embed_tokens.weight");
  legacy["norm_weight"] = state.at("model.norm.weight");
  for (int i = 0; i < 2; ++i) {
    const std::string l = absl::StrCat("model.layers.", i, "."), b = absl::StrCat("blocks.", i, ".");
    legacy[b + "qkv.weight"] = torch::cat({state.at(l + "self_attn.q_proj.weight"), state.at(l + "self_attn.k_proj.weight"),
                                           state.at(l + "self_attn.v_proj.weight")});
    legacy[b + "out.weight"] = state.at(l + "self_attn.o_proj.weight");
    for (const char* m : {"gate", "up", "down"}) legacy[b + m + ".weight"] = state.at(l + "mlp." + m + "_proj.weight");
    legacy[b + "norm1_weight"] = state.at(l + "input_layernorm.weight");
    legacy[b + "norm2_weight"] = state.at(l + "post_attention_layernorm.weight");
  }
  const std::map<std::string, torch::Tensor> renamed = model.FromHfNames(legacy);
  ASSERT_EQ(renamed.size(), state.size());
  for (const auto& [name, t] : state) {
    ASSERT_EQ(renamed.count(name), 1u) << name;
    EXPECT_TRUE(torch::equal(renamed.at(name), t)) << name;
  }
}

}  // namespace
}  // namespace trainerd
