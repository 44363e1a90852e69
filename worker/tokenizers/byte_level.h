// GPT-2's byte-level alphabet, shared by the ByteLevel pre-tokenizer (bytes to
// characters) and decoder (back): each of the 256 byte values is one printable
// character, the printable Latin-1 ones themselves and the others U+0100 and up.
#ifndef TRAINERD_WORKER_TOKENIZERS_BYTE_LEVEL_H_
#define TRAINERD_WORKER_TOKENIZERS_BYTE_LEVEL_H_

#include <optional>
#include <string>
#include <string_view>

namespace trainerd {

// Each byte of `bytes` as its character, in UTF-8.
std::string BytesToByteLevel(std::string_view bytes);
// The inverse: each character of `text` back to its byte; nullopt when a character is
// outside the alphabet (the decoder then keeps the token's own bytes, as the library does).
std::optional<std::string> ByteLevelToBytes(std::string_view text);
// GPT-2's pre-tokenizer pattern (ByteLevel with use_regex).
extern const char kGpt2SplitPattern[];

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TOKENIZERS_BYTE_LEVEL_H_
