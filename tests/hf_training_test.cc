// Training Hugging Face folders (tests/fixtures/hf): fine-tuning on pre-tokenized rows,
// raw text through the folder's sentencepiece and BERT's WordPiece (whose ids must equal
// transformers' tokenizers'), exact resume, sharded saves, the optimizations that apply,
// and the spec's hf fields.
#include <algorithm>
#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"
#include "tests/hf_test_util.h"
#include "tests/test_util.h"
#include "tests/trainer_test_util.h"
#include "worker/data/wordpiece_tokenizer.h"
#include "spec/hf_config.h"
#include "worker/models/model_factory.h"
#include "worker/tokenizers/hf_tokenizer.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using testing::ConfigKeys;
using testing::ExpectSameTensors;
using testing::FineTuneYaml;
using testing::Fixture;
using testing::Load;
using testing::TensorSignatures;
using testing::WriteLabelledTokenRows;
using testing::WriteTokenRows;
namespace fs = std::filesystem;

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
  const NamedTensors a = trainer->model().NamedParameters();
  ExpectSameTensors(a, resumed->model().NamedParameters());

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
  ExpectSameTensors(a, back->NamedState());
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

// Each architecture fine-tunes on pre-tokenized rows (the sequence classifiers on
// labelled ones): the loss falls, and a run resumed from its checkpoint ends with the
// same weights, dropout included (gpt2 and bert-seqcls have it: the RNG state is in the
// checkpoint).
class ArchitectureFineTuning : public ::testing::TestWithParam<const char*> {};

TEST_P(ArchitectureFineTuning, TheLossFallsAndResumeIsExact) {
  const std::string name = GetParam();
  const bool classifier = name.find("seqcls") != std::string::npos;
  testing::TempDir dir;
  if (classifier) {
    WriteLabelledTokenRows(dir / "train.jsonl", 90, 5);
  } else {
    WriteTokenRows(dir / "train.jsonl", 60, 7);
  }
  auto yaml = [&](const std::string& extra) {
    return absl::StrCat("model: {name_or_path: ", Fixture(name), "}\n", "data: {train: {path: ", dir / "train.jsonl",
                        classifier ? ", label_field: label" : "", "}, max_seq_length: 16}\n",
                        "training_args: {output_dir: ", dir / "out", ", max_steps: 20, per_device_train_batch_size: 6, "
                        "learning_rate: 0.002, logging_steps: 4, save_steps: 10, do_eval: false", extra, "}\n");
  };
  auto trainer = testing::MakeTrainer(testing::Spec(yaml("")));
  ASSERT_TRUE(trainer->train().ok());
  const std::vector<double> losses = testing::LoggedLosses(*trainer);
  ASSERT_EQ(losses.size(), 5u);
  std::printf("fine-tuning %s: loss %.3f -> %.3f over 20 steps\n", name.c_str(), losses.front(), losses.back());
  EXPECT_LT(losses.back(), losses.front());
  auto resumed = testing::MakeTrainer(
      testing::Spec(yaml(absl::StrCat(", resume_from_checkpoint: ", dir / "out/checkpoint-10"))));
  ASSERT_TRUE(resumed->train().ok());
  ExpectSameTensors(trainer->model().NamedParameters(), resumed->model().NamedParameters());
}

INSTANTIATE_TEST_SUITE_P(Hf, ArchitectureFineTuning,
                         ::testing::Values("mistral", "qwen2", "llama-tied", "gpt2", "llama-seqcls", "bert-seqcls"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

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
  const NamedTensors a = trainer->model().NamedParameters();
  ExpectSameTensors(a, resumed->model().NamedParameters());
  ASSERT_TRUE(trainer->save_model(dir / "final").ok());
  EXPECT_TRUE(fs::exists(dir / "final/model.safetensors.index.json"));
  std::unique_ptr<Model> back = Load(dir / "final");
  ASSERT_NE(back, nullptr);
  ExpectSameTensors(a, back->NamedState());
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

// BERT's vocab.txt through trainerd's WordPiece gives the ids (and, for sentence pairs,
// the token types) transformers' BertTokenizer gave.
TEST(HfTokenizer, WordPieceGivesBertTokenizersIdsAndTokenTypes) {
  const nlohmann::json ref = nlohmann::json::parse(testing::ReadFile(Fixture("bert-seqcls/reference_tokenization.json")));
  auto tokenizer = WordPieceTokenizer::FromVocab(testing::ReadFile(Fixture("bert-seqcls/vocab.txt")), true);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  for (size_t i = 0; i < ref["texts"].size(); ++i) {
    const std::string text = ref["texts"][i];
    EXPECT_EQ((*tokenizer)->Encode(text, nullptr, 512).ids, ref["input_ids"][i].get<std::vector<int64_t>>()) << text;
  }
  // pair_texts is transformers' batch call tokenizer(firsts, seconds): [firsts, seconds].
  for (size_t i = 0; i < ref["pair_texts"][0].size(); ++i) {
    const std::string a = ref["pair_texts"][0][i], b = ref["pair_texts"][1][i];
    const EncodedText e = (*tokenizer)->Encode(a, &b, 512);
    // The reference rows are padded to the longer pair with [PAD] (0), token type 0.
    std::vector<int64_t> ids = e.ids, types = e.token_type_ids;
    ids.resize(ref["pair_input_ids"][i].size(), 0);
    types.resize(ids.size(), 0);
    EXPECT_EQ(ids, ref["pair_input_ids"][i].get<std::vector<int64_t>>()) << a;
    EXPECT_EQ(types, ref["pair_token_type_ids"][i].get<std::vector<int64_t>>()) << a;
  }
  // longest_first truncation keeps [CLS] and both [SEP]s.
  const std::string a = ref["pair_texts"][0][0], b = ref["pair_texts"][1][0];
  const EncodedText cut = (*tokenizer)->Encode(a, &b, 10);
  ASSERT_EQ(cut.ids.size(), 10u);
  EXPECT_EQ(cut.ids.front(), 6);  // [CLS]
  EXPECT_EQ(std::count(cut.ids.begin(), cut.ids.end(), 7), 2);  // [SEP] twice
  EXPECT_FALSE(WordPieceTokenizer::FromVocab("a\nb\n", true).ok());  // no [CLS], [SEP], [UNK], [PAD]
}

// A BERT folder fine-tuned on raw sentence pairs (GLUE's shape): WordPiece with token
// types, the loss falls, and the saved folder carries vocab.txt.
TEST(HfTraining, FineTunesBertOnSentencePairs) {
  testing::TempDir dir;
  std::string rows;
  const char* words[] = {"quick", "brown", "fox", "lazy", "dog", "journey", "miles", "step", "work", "gifts"};
  for (int i = 0; i < 120; ++i) {
    const int label = i % 2;
    const std::string a = absl::StrCat("the ", words[i % 10], " ", words[(i / 10) % 10]);
    const std::string b = label ? a : absl::StrCat("a ", words[(i + 3) % 10], " ", words[(i + 7) % 10]);
    rows += nlohmann::json{{"sentence1", a}, {"sentence2", b}, {"label", label}}.dump() + "\n";
  }
  testing::WriteFile(dir / "pairs.jsonl", rows);
  auto trainer = testing::MakeTrainer(testing::Spec(absl::StrCat(
      "model: {name_or_path: ", Fixture("bert-seqcls"), "}\n",
      "data: {train: {path: ", dir / "pairs.jsonl", ", text_field: sentence1, text_pair_field: sentence2, ",
      "label_field: label}, max_seq_length: 24}\n",
      "training_args: {output_dir: ", dir / "out", ", max_steps: 60, per_device_train_batch_size: 16, ",
      "learning_rate: 0.001, logging_steps: 10, save_strategy: 'no', do_eval: false}\n")));
  EXPECT_EQ(trainer->data().train.inputs.sizes(), (std::vector<int64_t>{120, 2, 24}));  // ids and token types
  ASSERT_TRUE(trainer->train().ok());
  const std::vector<double> losses = testing::LoggedLosses(*trainer);
  ASSERT_GE(losses.size(), 2u);
  std::printf("fine-tuning bert-seqcls on sentence pairs: loss %.3f -> %.3f over 60 steps\n", losses.front(),
              losses.back());
  EXPECT_LT(losses.back(), losses.front());
  ASSERT_TRUE(trainer->save_model(dir / "final").ok());
  EXPECT_EQ(testing::ReadFile(dir / "final/vocab.txt"), testing::ReadFile(Fixture("bert-seqcls/vocab.txt")));
}

// A classifier folder fine-tuned on data with another number of labels (llama-seqcls has
// 3): its head is resized to the data's and newly initialized, as from_pretrained(
// num_labels=2, ignore_mismatched_sizes=True), and the saved config.json names the
// data's labels (before, the 3-label head and LABEL_0..2 were kept without a word).
TEST(HfTraining, AClassifierTakesTheDatasLabelsAndNamesThem) {
  testing::TempDir dir;
  std::string rows;
  for (int i = 0; i < 40; ++i) {
    rows += nlohmann::json{{"text", i % 2 ? "a fine day of sun" : "rain and a cold wind"},
                           {"label", i % 2 ? "pos" : "neg"}}.dump() + "\n";
  }
  testing::WriteFile(dir / "sentiment.jsonl", rows);
  auto trainer = testing::MakeTrainer(testing::Spec(absl::StrCat(
      "model: {name_or_path: ", Fixture("llama-seqcls"), "}\n",
      "data: {train: {path: ", dir / "sentiment.jsonl", ", label_field: label}, max_seq_length: 16}\n",
      "training_args: {output_dir: ", dir / "out", ", max_steps: 4, per_device_train_batch_size: 8, ",
      "save_strategy: 'no', do_eval: false}\n")));
  ASSERT_TRUE(trainer->train().ok());
  ASSERT_TRUE(trainer->save_model(dir / "final").ok());
  const nlohmann::json config = nlohmann::json::parse(testing::ReadFile(dir / "final/config.json"));
  EXPECT_EQ(config["id2label"], (nlohmann::json{{"0", "neg"}, {"1", "pos"}}));
  EXPECT_EQ(config["label2id"], (nlohmann::json{{"neg", 0}, {"pos", 1}}));
  std::unique_ptr<Model> back = Load(dir / "final");
  ASSERT_NE(back, nullptr);
  for (const auto& [name, t] : back->NamedState()) {
    if (name == "score.weight") EXPECT_EQ(t.size(0), 2);
  }
}

// A GLUE-style tokenized dataset (input_ids, token_type_ids, attention_mask, label) gives
// BERT the inputs the raw sentence pairs give through vocab.txt; token types the model
// lacks are refused by name, and a model without token types ignores them.
TEST(HfTraining, PreTokenizedPairsCarryTheirTokenTypes) {
  testing::TempDir dir;
  auto tokenizer = WordPieceTokenizer::FromVocab(testing::ReadFile(Fixture("bert-seqcls/vocab.txt")), true);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  std::string raw, tokenized;
  for (int i = 0; i < 12; ++i) {
    const std::string a = absl::StrCat("the quick fox number ", i), b = i % 2 ? "a lazy dog" : "the long journey";
    raw += nlohmann::json{{"s1", a}, {"s2", b}, {"label", i % 2}}.dump() + "\n";
    const EncodedText e = (*tokenizer)->Encode(a, &b, 24);
    tokenized += nlohmann::json{{"input_ids", e.ids}, {"token_type_ids", e.token_type_ids},
                                {"attention_mask", std::vector<int>(e.ids.size(), 1)}, {"label", i % 2}}
                     .dump() +
                 "\n";
  }
  testing::WriteFile(dir / "raw.jsonl", raw);
  testing::WriteFile(dir / "tokenized.jsonl", tokenized);
  auto load = [&](const std::string& model, const std::string& source) {
    auto spec = testing::Spec(absl::StrCat("model: {name_or_path: ", Fixture(model), "}\n",
                                           "data: {train: ", source, ", max_seq_length: 24}\n",
                                           "training_args: {output_dir: ", dir / "out", "}\n"));
    return LoadDataAndModel(spec);
  };
  auto from_raw = load("bert-seqcls", absl::StrCat("{path: ", dir / "raw.jsonl", ", text_field: s1, "
                                                   "text_pair_field: s2, label_field: label}"));
  auto from_rows = load("bert-seqcls", absl::StrCat("{path: ", dir / "tokenized.jsonl", ", label_field: label}"));
  ASSERT_TRUE(from_raw.ok()) << from_raw.status();
  ASSERT_TRUE(from_rows.ok()) << from_rows.status();
  EXPECT_EQ(from_rows->data.train.inputs.sizes(), (std::vector<int64_t>{12, 2, 24}));
  EXPECT_TRUE(from_rows->data.train.inputs.select(1, 1).gt(0).any().item<bool>());  // the second texts
  EXPECT_TRUE(torch::equal(from_rows->data.train.inputs, from_raw->data.train.inputs));
  EXPECT_TRUE(torch::equal(from_rows->data.train.labels, from_raw->data.train.labels));

  testing::WriteFile(dir / "bad.jsonl", "{\"input_ids\": [5, 6], \"token_type_ids\": [0, 7], \"label\": 1}\n");
  auto bad = load("bert-seqcls", absl::StrCat("{path: ", dir / "bad.jsonl", ", label_field: label}"));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("bad.jsonl:1: \"token_type_ids\"[1] is not a token type of the model (0..1)"));
  // llama-seqcls reads no token types: the column is ignored.
  auto llama = load("llama-seqcls", absl::StrCat("{path: ", dir / "bad.jsonl", ", label_field: label}"));
  ASSERT_TRUE(llama.ok()) << llama.status();
  EXPECT_EQ(llama->data.train.inputs.dim(), 2);
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

// A Qwen2 folder that ships only tokenizer.json (no tokenizer.model), as current Qwen2,
// Llama-3 and GPT-2 folders do: raw text is tokenized with it in C++ (its BOS-less
// Qwen2 pipeline: NFC, the Split regex, byte-level BPE), the model fine-tunes, and the
// saved folder carries the same tokenizer.json. The tokenizer is the qwen2-bpe fixture's
// (checked against the Rust library) cut to the model's 512 ids.
TEST(HfTraining, FineTunesAQwen2FolderThatHasOnlyTokenizerJson) {
  testing::TempDir dir;
  const fs::path folder = dir.path() / "qwen2-json";
  fs::create_directories(folder);
  for (const char* name : {"config.json", "generation_config.json", "model.safetensors"}) {
    fs::copy_file(Fixture(std::string("qwen2/") + name), folder / name);
  }
  const std::string tokenizers = (fs::absolute(testing::SourceDir()) / "tests/fixtures/hf/tokenizers/qwen2-bpe").string();
  nlohmann::json tokenizer = nlohmann::json::parse(testing::ReadFile(tokenizers + "/tokenizer.json"));
  nlohmann::json& model = tokenizer["model"];
  nlohmann::json vocab = nlohmann::json::object();
  for (const auto& [token, id] : model["vocab"].items()) {
    if (id.get<int64_t>() < 509) vocab[token] = id;
  }
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& m : model["merges"]) {
    const std::string text = m.get<std::string>();
    const std::string a = text.substr(0, text.find(' ')), b = text.substr(text.find(' ') + 1);
    if (vocab.contains(a) && vocab.contains(b) && vocab.contains(a + b)) merges.push_back(m);
  }
  model["vocab"] = vocab;
  model["merges"] = merges;
  for (size_t i = 0; i < tokenizer["added_tokens"].size(); ++i) tokenizer["added_tokens"][i]["id"] = 509 + i;
  testing::WriteFile((folder / "tokenizer.json").string(), tokenizer.dump());
  fs::copy_file(tokenizers + "/tokenizer_config.json", folder / "tokenizer_config.json");

  auto trainer = testing::MakeTrainer(testing::Spec(absl::StrCat(
      "model: {name_or_path: ", folder.string(), "}\n",
      "data: {train: {path: /usr/share/games/fortunes/cookie, format: text, limit: 200}, max_seq_length: 32}\n",
      "training_args: {output_dir: ", dir / "out", ", max_steps: 30, per_device_train_batch_size: 8, ",
      "learning_rate: 0.003, logging_steps: 10, save_strategy: 'no', do_eval: false}\n")));
  // The first block starts with the first fortune as the tokenizer gives it (no BOS).
  auto reference = HfTokenizer::Load(folder.string());
  ASSERT_TRUE(reference.ok()) << reference.status();
  std::string first;
  for (const auto& line : absl::StrSplit(testing::ReadFile("/usr/share/games/fortunes/cookie"), '\n')) {
    if (line == "%") break;
    absl::StrAppend(&first, first.empty() ? "" : "\n", line);
  }
  absl::StatusOr<Encoding> ids = (*reference)->Encode(std::string(absl::StripAsciiWhitespace(first)));
  ASSERT_TRUE(ids.ok()) << ids.status();
  const torch::Tensor block = trainer->data().train.inputs[0];
  for (size_t k = 0; k < std::min<size_t>(ids->ids.size(), 32); ++k) EXPECT_EQ(block[k].item<int64_t>(), ids->ids[k]) << k;
  ASSERT_TRUE(trainer->train().ok());
  const std::vector<double> losses = testing::LoggedLosses(*trainer);
  ASSERT_GE(losses.size(), 2u);
  std::printf("fine-tuning qwen2 with tokenizer.json on fortunes: loss %.3f -> %.3f over 30 steps\n", losses.front(),
              losses.back());
  EXPECT_LT(losses.back(), losses.front());
  ASSERT_TRUE(trainer->save_model(dir / "final").ok());
  EXPECT_EQ(testing::ReadFile(dir / "final/tokenizer.json"), testing::ReadFile((folder / "tokenizer.json").string()));
  EXPECT_FALSE(fs::exists(dir / "final/tokenizer.model"));
}

// The built-in gpt is a LlamaForCausalLM: its final folder has Llama's names (the fused
// qkv split), a config.json, and loads as one, computing the same logits.
TEST(HfTraining, TheBuiltInGptSavesALlamaForCausalLMFolder) {
  testing::TempDir dir;
  const std::string yaml = absl::StrCat(
      "model: {type: gpt, hidden_size: 64, num_layers: 2, num_heads: 4}\n",
      "data: {train: {path: /usr/share/games/fortunes/cookie, format: text, limit: 200}, max_seq_length: 32, ",
      "tokenizer: {vocab_size: 300}}\n",
      "training_args: {output_dir: ", dir / "out", ", max_steps: 10, per_device_train_batch_size: 8, ",
      "logging_steps: 5, save_steps: 5, do_eval: false}\n");
  auto trainer = testing::MakeTrainer(testing::Spec(yaml));
  ASSERT_TRUE(trainer->train().ok());
  // Its checkpoints are Llama folders too, and resume from them is exact.
  std::unique_ptr<Model> checkpoint = Load(dir / "out/checkpoint-10");
  ASSERT_NE(checkpoint, nullptr);
  ExpectSameTensors(checkpoint->NamedState(), trainer->model().HfState());
  auto resumed = testing::MakeTrainer(testing::Spec(
      yaml, {absl::StrCat("training_args.resume_from_checkpoint=", dir / "out/checkpoint-5")}));
  ASSERT_TRUE(resumed->train().ok());
  ExpectSameTensors(resumed->model().NamedState(), trainer->model().NamedState());
  // Llama's names map back to the model's own (q/k/v joined into qkv); a checkpoint
  // under its own names, as earlier versions wrote them, loads as it is.
  auto as_map = [](const NamedTensors& t) { return std::map<std::string, torch::Tensor>(t.begin(), t.end()); };
  const auto own = as_map(trainer->model().NamedState());
  for (const auto& from : {trainer->model().FromHfNames(as_map(trainer->model().HfState())),
                           trainer->model().FromHfNames(own)}) {
    ASSERT_EQ(from.size(), own.size());
    for (const auto& [name, t] : own) EXPECT_TRUE(from.count(name) && torch::equal(from.at(name), t)) << name;
  }
  ASSERT_TRUE(trainer->save_model(dir / "final").ok());
  std::unique_ptr<Model> llama = Load(dir / "final");  // no missing or unexpected tensors
  ASSERT_NE(llama, nullptr);
  EXPECT_TRUE(fs::exists(dir / "final/model.pt"));  // and its TorchScript, as before
  llama->SetTraining(false);
  trainer->model().SetTraining(false);
  torch::NoGradGuard no_grad;
  torch::Tensor ids = trainer->data().train.inputs.slice(0, 0, 4);
  torch::Tensor want = trainer->model().Forward(ids), got = llama->Forward(ids);
  ASSERT_EQ(got.sizes(), want.sizes());
  const double error = ((got - want).abs().max() / want.abs().max()).item<double>();
  std::printf("built-in gpt saved as LlamaForCausalLM: logits within %.2e\n", error);
  EXPECT_LT(error, 1e-5);
}

TEST(HfSpec, NameOrPathMakesAnHfModelAndItsFieldsAreChecked) {
  auto problems = [](const std::string& model) {
    auto spec = ParseJobSpec("model: " + model + "\ndata: {train: {path: /usr/share/games/fortunes/cookie, format: text}}\n");
    EXPECT_TRUE(spec.ok()) << spec.status();
    ApplyDefaults(&*spec);
    return absl::StrJoin(FindSpecProblems(*spec), "\n");
  };
  EXPECT_THAT(problems("{name_or_path: /no/such/folder}"), HasSubstr("model.name_or_path: no config.json in /no/such/folder"));
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
