// Tokenizers, measured side by side in one run on the same text (Debian's fortunes, every
// document of `cookie`): a Hugging Face tokenizer.json read and run in C++
// (worker/tokenizers: GPT-2's and Qwen2's byte-level BPE, BERT's WordPiece, from
// tests/fixtures/hf/tokenizers) against sentencepiece (Debian's libsentencepiece, a BPE
// model of the same vocabulary size trained on the same text), in tokens per second on
// one thread, median of alternating rounds.
//
//   tokenizer_bench [--rounds R]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/bench_flags.h"
#include "worker/data/sentencepiece_model.h"
#include "worker/tokenizers/hf_tokenizer.h"

namespace trainerd {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> Fortunes() {
  std::vector<std::string> docs;
  std::string doc;
  std::FILE* f = std::fopen("/usr/share/games/fortunes/cookie", "r");
  if (f == nullptr) {
    std::fprintf(stderr, "tokenizer_bench: /usr/share/games/fortunes/cookie is missing (package fortunes)\n");
    std::exit(1);
  }
  std::string text;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) text.append(buf, n);
  std::fclose(f);
  for (const auto& line : absl::StrSplit(text, '\n')) {
    if (line == "%") {
      if (!doc.empty()) docs.push_back(std::string(absl::StripAsciiWhitespace(doc)));
      doc.clear();
    } else {
      absl::StrAppend(&doc, doc.empty() ? "" : "\n", line);
    }
  }
  return docs;
}

// Tokens per second of `encode` over every document, and the tokens it made.
template <typename Encode>
std::pair<double, int64_t> Measure(const std::vector<std::string>& docs, Encode encode) {
  const auto start = Clock::now();
  int64_t tokens = 0;
  for (const std::string& d : docs) tokens += encode(d);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return {static_cast<double>(tokens) / seconds, tokens};
}

int Main(int argc, char** argv) {
  int rounds = 5;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--rounds") rounds = std::atoi(argv[i + 1]);
  }
  const std::vector<std::string> docs = Fortunes();
  int64_t bytes = 0;
  for (const std::string& d : docs) bytes += static_cast<int64_t>(d.size());
  std::printf("text: %zu fortunes, %lld bytes\n", docs.size(), static_cast<long long>(bytes));
  const std::string fixtures = std::string(TRAINERD_SOURCE_DIR) + "/tests/fixtures/hf/tokenizers/";
  std::string error;
  auto sentencepiece = SentencePieceModel::Train(docs, 1259, "bpe", 1, &error);
  if (!sentencepiece) {
    std::fprintf(stderr, "tokenizer_bench: sentencepiece: %s\n", error.c_str());
    return 1;
  }
  std::vector<double> sp_rates;
  int64_t sp_tokens = 0;
  std::printf("%-28s %12s %12s %10s\n", "tokenizer", "tokens", "tokens/s", "vs sp");
  for (const char* name : {"gpt2-bpe", "qwen2-bpe", "bert-wordpiece"}) {
    auto tokenizer = HfTokenizer::Load(fixtures + name);
    if (!tokenizer.ok()) {
      std::fprintf(stderr, "tokenizer_bench: %s\n", std::string(tokenizer.status().message()).c_str());
      return 1;
    }
    std::vector<double> json_rates;
    int64_t json_tokens = 0;
    sp_rates.clear();
    for (int r = 0; r < rounds; ++r) {  // alternating, so that both see the same machine
      auto [json_rate, jt] = Measure(docs, [&](const std::string& d) {
        return static_cast<int64_t>((*tokenizer)->Encode(d, /*add_special_tokens=*/false)->ids.size());
      });
      auto [sp_rate, st] = Measure(docs, [&](const std::string& d) {
        return static_cast<int64_t>(sentencepiece->Encode(d).size());
      });
      json_rates.push_back(json_rate);
      sp_rates.push_back(sp_rate);
      json_tokens = jt;
      sp_tokens = st;
    }
    const double json_median = bench::Median(json_rates), sp_median = bench::Median(sp_rates);
    std::printf("%-28s %12lld %12.0f %9.2fx\n", absl::StrCat("tokenizer.json ", name).c_str(),
                static_cast<long long>(json_tokens), json_median, json_median / sp_median);
  }
  std::printf("%-28s %12lld %12.0f %9.2fx\n", "sentencepiece bpe 1259", static_cast<long long>(sp_tokens),
              bench::Median(sp_rates), 1.0);
  return 0;
}

}  // namespace
}  // namespace trainerd

int main(int argc, char** argv) { return trainerd::Main(argc, argv); }
