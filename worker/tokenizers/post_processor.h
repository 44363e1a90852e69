// Post-processors of tokenizer.json ("post_processor"): the special tokens put around
// one text or a pair ([CLS] A [SEP] B [SEP], <|begin_of_text|> A) and each token's
// type id (segment).
#ifndef TRAINERD_WORKER_TOKENIZERS_POST_PROCESSOR_H_
#define TRAINERD_WORKER_TOKENIZERS_POST_PROCESSOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace trainerd {

// What a tokenizer makes of a text: ids, their tokens, and type ids.
struct Encoding {
  std::vector<int64_t> ids;
  std::vector<std::string> tokens;
  std::vector<int64_t> type_ids;
  void Append(const Encoding& other);
  void Append(int64_t id, const std::string& token, int64_t type_id);
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // `a`, and `b` for a pair (null otherwise), made one encoding; the special tokens only
  // with `add_special_tokens`.
  virtual Encoding Process(const Encoding& a, const Encoding* b, bool add_special_tokens) const = 0;
};

// Without a post-processor: A then B, with type ids 0 and 1.
Encoding JoinEncodings(const Encoding& a, const Encoding* b);

// The post-processor `j` describes (null: none, returns null). Types: TemplateProcessing,
// BertProcessing, RobertaProcessing, ByteLevel (changes no ids), Sequence.
absl::StatusOr<std::unique_ptr<PostProcessor>> MakePostProcessor(const nlohmann::json& j, const std::string& where);

// A TemplateProcessing of `single` and `pair` ("[CLS]:0 $A:0 [SEP]:0" pieces) with the
// special tokens' ids; for a tokenizer_config.json's add_bos_token / add_eos_token.
std::unique_ptr<PostProcessor> MakeTemplate(const std::vector<std::string>& single, const std::vector<std::string>& pair,
                                            const std::map<std::string, int64_t>& special_ids);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TOKENIZERS_POST_PROCESSOR_H_
