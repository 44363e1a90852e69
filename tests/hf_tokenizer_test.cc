// tokenizer.json read and run in C++, against the Rust tokenizers library: each fixture
// of tests/fixtures/hf/tokenizers lists texts (and pairs) with the ids, tokens, type ids
// and decoded texts the library gave for them (the fixtures' README says what each file
// pins down). Every id must match, and decoding must give the library's text back.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/test_util.h"
#include "worker/tokenizers/bounded_regex.h"
#include "worker/tokenizers/hf_tokenizer.h"
#include "worker/tokenizers/token_decoder.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string FixtureDir(const std::string& name) {
  return (fs::absolute(testing::SourceDir()) / "tests/fixtures/hf/tokenizers" / name).string();
}

class GoldenTokenization : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTokenization, MatchesTheRustLibrary) {
  const std::string dir = FixtureDir(GetParam());
  absl::StatusOr<std::unique_ptr<HfTokenizer>> tokenizer = HfTokenizer::Load(dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const json reference = json::parse(testing::ReadFile(dir + "/reference_tokenization.json"));
  ASSERT_GT(reference.size(), 10u);
  for (const json& entry : reference) {
    const std::string text = entry["text"].get<std::string>();
    const bool special = entry["add_special_tokens"].get<bool>();
    SCOPED_TRACE(absl::StrCat("text: \"", text, "\"", entry.contains("text_pair") ? " (a pair)" : "",
                              special ? "" : " without special tokens"));
    absl::StatusOr<Encoding> encoding =
        entry.contains("text_pair") ? (*tokenizer)->EncodePair(text, entry["text_pair"].get<std::string>(), special)
                                    : (*tokenizer)->Encode(text, special);
    ASSERT_TRUE(encoding.ok()) << encoding.status();
    EXPECT_EQ(encoding->ids, entry["ids"].get<std::vector<int64_t>>());
    EXPECT_EQ(encoding->tokens, entry["tokens"].get<std::vector<std::string>>());
    if (entry.contains("token_type_ids")) {
      EXPECT_EQ(encoding->type_ids, entry["token_type_ids"].get<std::vector<int64_t>>());
    }
    if (!entry.contains("decoded")) continue;  // pairs
    const std::string decoded = (*tokenizer)->Decode(entry["ids"].get<std::vector<int64_t>>());
    EXPECT_EQ(decoded, entry["decoded"].get<std::string>());
    if (entry.contains("decoded_clean_up")) {
      ASSERT_TRUE((*tokenizer)->clean_up_tokenization_spaces());
      EXPECT_EQ(CleanUpTokenization(decoded), entry["decoded_clean_up"].get<std::string>());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenTokenization,
                         ::testing::Values("gpt2-bpe", "qwen2-bpe", "llama3-bpe", "bert-wordpiece"));

TEST(HfTokenizer, SpecialTokensOfTheConfig) {
  auto qwen = HfTokenizer::Load(FixtureDir("qwen2-bpe"));
  ASSERT_TRUE(qwen.ok()) << qwen.status();
  EXPECT_EQ((*qwen)->eos_id(), 1256);
  EXPECT_EQ((*qwen)->pad_id(), 1256);
  EXPECT_FALSE((*qwen)->bos_id().has_value());
  EXPECT_EQ((*qwen)->vocab_size(), 1259);
  auto llama3 = HfTokenizer::Load(FixtureDir("llama3-bpe"));
  ASSERT_TRUE(llama3.ok()) << llama3.status();
  EXPECT_EQ((*llama3)->bos_id(), 1257);
  EXPECT_EQ((*llama3)->Decode({1257, 383}, /*skip_special_tokens=*/true), "The");
}

// A Llama-2 style file (SentencePiece converted: Metaspace, byte fallback, BOS from the
// config's add_bos_token) written here by hand, small enough to follow by eye.
TEST(HfTokenizer, MetaspaceWithByteFallbackAndTheConfigsBos) {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"\u2581", 3}, {"h", 4}, {"i", 5}, {"\u2581h", 6}, {"hi", 7},
                {"\u2581hi", 8}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 9 + b;
  }
  const json file = {
      {"added_tokens", {{{"id", 0}, {"content", "<unk>"}, {"special", true}, {"normalized", false}},
                        {{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                        {{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", false}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "Sequence"}, {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}},
                                                        {"content", " "}},
                                                       {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                                                       {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model", {{"type", "BPE"}, {"byte_fallback", true}, {"unk_token", "<unk>"}, {"fuse_unk", true},
                 {"vocab", vocab}, {"merges", {"\u2581 h", "h i", "\u2581h i"}}}}};
  const json config = {{"tokenizer_class", "LlamaTokenizer"}, {"bos_token", "<s>"}, {"eos_token", "</s>"},
                       {"add_bos_token", true}, {"add_eos_token", false}};
  auto tokenizer = HfTokenizer::FromJson(file.dump(), config.dump());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  // "é" is not in the vocabulary: its two UTF-8 bytes come out as <0xC3> <0xA9>.
  absl::StatusOr<Encoding> e = (*tokenizer)->Encode("hi hié");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->ids, (std::vector<int64_t>{1, 8, 8, 9 + 0xC3, 9 + 0xA9}));
  EXPECT_EQ((*tokenizer)->Decode(e->ids, /*skip_special_tokens=*/true), "hi hié");
}

TEST(HfTokenizer, UnigramPicksTheBestSegmentation) {
  const json file = {{"model", {{"type", "Unigram"}, {"unk_id", 0},
                                {"vocab", json::array({json::array({"<unk>", 0.0}), json::array({"a", -1.0}),
                                                       json::array({"b", -1.0}), json::array({"ab", -1.5}),
                                                       json::array({"abc", -5.0}), json::array({"c", -1.0})})}}},
                     {"pre_tokenizer", {{"type", "WhitespaceSplit"}}}};
  auto tokenizer = HfTokenizer::FromJson(file.dump(), "");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  absl::StatusOr<Encoding> e = (*tokenizer)->Encode("abc xxab");
  ASSERT_TRUE(e.ok()) << e.status();
  // ab + c (-2.5) beats abc (-5) and a + b + c (-3); the unknown "xx" is one <unk>.
  EXPECT_EQ(e->tokens, (std::vector<std::string>{"ab", "c", "xx", "ab"}));
  EXPECT_EQ(e->ids, (std::vector<int64_t>{3, 5, 0, 3}));
}

TEST(HfTokenizer, BadFilesAreRefusedByField) {
  auto bad = [](const json& file) {
    auto t = HfTokenizer::FromJson(file.dump(), "");
    return t.ok() ? std::string("accepted") : std::string(t.status().message());
  };
  const json bpe = {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}}}, {"merges", json::array()}};
  EXPECT_EQ(HfTokenizer::FromJson("not json", "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad({{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", {"a z"}}}}}).find("model.merges[0]"),
            std::string::npos);
  EXPECT_NE(bad({{"model", {{"type", "Magic"}}}}).find("model.type"), std::string::npos);
  EXPECT_NE(bad({{"model", bpe}, {"pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}}}})
                .find("pre_tokenizer.pattern"),
            std::string::npos);
  EXPECT_NE(bad({{"model", bpe}, {"normalizer", {{"type", "Nope"}}}}).find("normalizer.type"), std::string::npos);
  EXPECT_NE(bad({{"model", bpe}, {"added_tokens", {{{"id", -1}, {"content", "x"}}}}}).find("added_tokens[0].id"),
            std::string::npos);
  EXPECT_NE(bad({{"model", {{"type", "WordPiece"}, {"vocab", {{"[UNK]", 0}}}, {"max_input_chars_per_word", "x"}}}})
                .find("wrong type"),
            std::string::npos);
}

// A pattern that backtracks exponentially on a hostile text stops at its limit with an
// error instead of running away.
TEST(BoundedRegex, AMatchThatRunsAwayIsStopped) {
  auto regex = BoundedRegex::Compile("(a+)+$");
  ASSERT_TRUE(regex.ok());
  auto matches = regex->FindAll(std::string(40, 'a') + "!");
  EXPECT_EQ(matches.status().code(), absl::StatusCode::kResourceExhausted);
  auto fine = regex->FindAll("aaa");
  ASSERT_TRUE(fine.ok());
  EXPECT_EQ(fine->size(), 1u);
}

}  // namespace
}  // namespace trainerd
