// Helpers the benches that build specs share: a spec from YAML with defaults applied
// (and, through bench_flags.h, the command line and the median).
#ifndef TRAINERD_BENCH_BENCH_UTIL_H_
#define TRAINERD_BENCH_BENCH_UTIL_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "bench/bench_flags.h"
#include "spec/hf_config.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"

namespace trainerd::bench {

// Exits with the parser's message if `yaml` is not a job spec.
inline trainer::v1::JobSpec Spec(const std::string& yaml) {
  auto spec = ParseJobSpec(yaml);
  if (!spec.ok()) {
    std::fprintf(stderr, "%s\n", std::string(spec.status().message()).c_str());
    std::exit(1);
  }
  ApplyDefaults(&*spec);
  return *spec;
}

// config.json of a Llama of `hidden` x `layers` (heads of 64, intermediate 8/3 hidden
// rounded to 256), as the admission benches size it.
inline std::string LlamaConfigText(int64_t hidden, int64_t layers, int64_t vocab, const std::string& dtype) {
  return absl::StrCat(
      "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": ", vocab,
      ", \"hidden_size\": ", hidden, ", \"intermediate_size\": ", (8 * hidden / 3 + 255) / 256 * 256,
      ", \"num_hidden_layers\": ", layers, ", \"num_attention_heads\": ", hidden / 64,
      ", \"num_key_value_heads\": ", hidden / 64, ", \"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-05, "
      "\"rope_theta\": 10000.0, \"tie_word_embeddings\": false, \"bos_token_id\": 1, \"eos_token_id\": 2, "
      "\"torch_dtype\": \"", dtype, "\"}");
}

// Exits with the parser's message if `text` is not a config.json.
inline HfConfig ParsedOrExit(const std::string& text) {
  absl::StatusOr<HfConfig> parsed = ParseHfConfig(text);
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s\n", std::string(parsed.status().message()).c_str());
    std::exit(1);
  }
  return *parsed;
}

}  // namespace trainerd::bench

#endif  // TRAINERD_BENCH_BENCH_UTIL_H_
