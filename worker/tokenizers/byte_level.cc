#include "worker/tokenizers/byte_level.h"

#include <array>
#include <map>

#include "worker/tokenizers/unicode_text.h"

namespace trainerd {
namespace {

const std::array<char32_t, 256>& ByteChars() {
  static const std::array<char32_t, 256> chars = [] {
    std::array<char32_t, 256> out{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      out[b] = printable ? static_cast<char32_t>(b) : next++;
    }
    return out;
  }();
  return chars;
}

const std::map<char32_t, unsigned char>& CharBytes() {
  static const auto* bytes = [] {
    auto* out = new std::map<char32_t, unsigned char>();
    for (int b = 0; b < 256; ++b) (*out)[ByteChars()[b]] = static_cast<unsigned char>(b);
    return out;
  }();
  return *bytes;
}

}  // namespace

const char kGpt2SplitPattern[] = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string BytesToByteLevel(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) AppendUtf8(ByteChars()[b], &out);
  return out;
}

std::optional<std::string> ByteLevelToBytes(std::string_view text) {
  std::string out;
  for (char32_t c : DecodeUtf8(text)) {
    auto it = CharBytes().find(c);
    if (it == CharBytes().end()) return std::nullopt;
    out.push_back(static_cast<char>(it->second));
  }
  return out;
}

}  // namespace trainerd
