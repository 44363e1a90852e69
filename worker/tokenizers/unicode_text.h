// What the tokenizers need of Unicode: UTF-8 in and out, normalization forms, and the
// character classes the Hugging Face tokenizers library takes from Rust's char
// (whitespace, punctuation, "other", marks, CJK ideographs). Built on Debian's utf8proc,
// whose tables follow the Unicode version it was built with.
#ifndef TRAINERD_WORKER_TOKENIZERS_UNICODE_TEXT_H_
#define TRAINERD_WORKER_TOKENIZERS_UNICODE_TEXT_H_

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace trainerd {

// The code points of `text`; each byte of an invalid sequence becomes U+FFFD, as
// String::from_utf8_lossy reads it.
std::u32string DecodeUtf8(std::string_view text);
// Calls fn(c, begin, length) for each code point of `text` and the bytes it takes (an
// invalid byte: U+FFFD, one byte).
void ForEachChar(std::string_view text, const std::function<void(char32_t, size_t, size_t)>& fn);
void AppendUtf8(char32_t c, std::string* out);
std::string EncodeUtf8(const std::u32string& text);
// The byte length of the UTF-8 sequence that starts with `lead` (1 for a stray byte).
size_t Utf8Length(unsigned char lead);

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };
// `text` in normal form `form` (invalid UTF-8 is first read lossily).
std::string NormalizeUnicode(std::string_view text, NormalForm form);

// Rust's char::is_whitespace (the White_Space property).
bool IsWhitespace(char32_t c);
// Unicode general category P* (and the ASCII punctuation and symbols BERT counts).
bool IsPunctuation(char32_t c);
// Rust's is_other: category C* (controls, format, surrogates, private use, unassigned).
bool IsOther(char32_t c);
// Rust's char::is_numeric: categories Nd, Nl, No.
bool IsNumeric(char32_t c);
// Category Mn (the accents NFD splits off).
bool IsNonspacingMark(char32_t c);
// Categories L*, N*, and the connector punctuation _ (what \w matches).
bool IsWordChar(char32_t c);
// The CJK ideograph blocks BERT puts spaces around.
bool IsChineseChar(char32_t c);
// The simple lowercase mapping.
char32_t ToLower(char32_t c);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TOKENIZERS_UNICODE_TEXT_H_
