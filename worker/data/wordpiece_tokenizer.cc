#include "worker/data/wordpiece_tokenizer.h"

#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace trainerd {
namespace {

// UTF-8 to code points; a malformed byte becomes U+FFFD (which cleaning drops).
std::vector<char32_t> Decode(const std::string& s) {
  std::vector<char32_t> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
    if (extra < 0 || i + extra >= s.size() + (extra == 0 ? 1 : 0)) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    char32_t cp = extra == 0 ? c : c & (0x3F >> extra);
    bool ok = true;
    for (int k = 1; k <= extra; ++k) {
      const unsigned char next = static_cast<unsigned char>(s[i + k]);
      ok = ok && (next >> 6) == 0x2;
      cp = (cp << 6) | (next & 0x3F);
    }
    out.push_back(ok ? cp : 0xFFFD);
    i += ok ? extra + 1 : 1;
  }
  return out;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsWhitespace(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

// Unicode categories Cc and Cf, except the whitespace controls.
bool IsControl(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  return c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0xAD || (c >= 0x200B && c <= 0x200F) ||
         (c >= 0x202A && c <= 0x202E) || (c >= 0x2060 && c <= 0x2064) || c == 0xFEFF;
}

// BERT's rule: all non-letter/number ASCII, and the Unicode punctuation blocks.
bool IsPunctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
  return c == 0xA1 || c == 0xA7 || c == 0xAB || c == 0xB6 || c == 0xB7 || c == 0xBB || c == 0xBF ||
         (c >= 0x2010 && c <= 0x2027) || (c >= 0x2030 && c <= 0x205E) || (c >= 0x3001 && c <= 0x303F) ||
         (c >= 0xFF01 && c <= 0xFF0F);
}

bool IsCjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Lower case, then NFD with the combining marks dropped, for ASCII and Latin-1.
char32_t LowerWithoutAccent(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) c += 0x20;  // À..Þ -> à..þ (not ×)
  if (c < 0xE0 || c > 0xFF) return c;
  // à..ÿ: the base letter of each that decomposes (æ, ð, ø, þ and ÷ do not).
  static const char kBase[] = "aaaaaa\0ceeeeiiii\0nooooo\0\0uuuuy\0y";
  const char base = kBase[c - 0xE0];
  return base == '\0' ? c : static_cast<char32_t>(base);
}

}  // namespace

absl::StatusOr<std::unique_ptr<WordPieceTokenizer>> WordPieceTokenizer::FromVocab(const std::string& vocab_text,
                                                                                   bool do_lower_case) {
  std::unique_ptr<WordPieceTokenizer> t(new WordPieceTokenizer());
  t->do_lower_case_ = do_lower_case;
  std::istringstream lines(vocab_text);
  std::string line;
  for (int64_t id = 0; std::getline(lines, line); ++id) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    t->vocab_.emplace(line, id);
  }
  for (const auto& [name, field] : {std::pair{"[CLS]", &t->cls_id_}, {"[SEP]", &t->sep_id_},
                                    {"[UNK]", &t->unk_id_}, {"[PAD]", &t->pad_id_}}) {
    auto it = t->vocab_.find(name);
    if (it == t->vocab_.end()) return absl::InvalidArgumentError(absl::StrCat("vocab.txt: has no ", name));
    *field = it->second;
  }
  return t;
}

std::vector<std::string> WordPieceTokenizer::BasicTokens(const std::string& text) const {
  std::vector<std::string> words;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) words.push_back(std::move(word));
    word.clear();
  };
  for (char32_t c : Decode(text)) {
    if (c == 0 || c == 0xFFFD || IsControl(c)) continue;
    if (IsWhitespace(c)) {
      flush();
      continue;
    }
    if (do_lower_case_) {
      c = LowerWithoutAccent(c);
      if (c >= 0x300 && c <= 0x36F) continue;  // a combining mark (category Mn)
    }
    if (IsPunctuation(c) || IsCjk(c)) {
      flush();
      AppendUtf8(c, &word);
      flush();
      continue;
    }
    AppendUtf8(c, &word);
  }
  flush();
  return words;
}

void WordPieceTokenizer::AppendWordPieces(const std::string& word, std::vector<int64_t>* ids) const {
  const std::vector<char32_t> chars = Decode(word);
  if (chars.size() > 100) {
    ids->push_back(unk_id_);
    return;
  }
  std::vector<int64_t> pieces;
  for (size_t start = 0; start < chars.size();) {
    int64_t found = -1;
    size_t end = chars.size();
    for (; end > start; --end) {
      std::string piece = start > 0 ? "##" : "";
      for (size_t k = start; k < end; ++k) AppendUtf8(chars[k], &piece);
      auto it = vocab_.find(piece);
      if (it != vocab_.end()) {
        found = it->second;
        break;
      }
    }
    if (found < 0) {  // no piece matches: the whole word is unknown
      ids->push_back(unk_id_);
      return;
    }
    pieces.push_back(found);
    start = end;
  }
  ids->insert(ids->end(), pieces.begin(), pieces.end());
}

std::vector<int64_t> WordPieceTokenizer::Tokenize(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const std::string& word : BasicTokens(text)) AppendWordPieces(word, &ids);
  return ids;
}

EncodedText WordPieceTokenizer::Encode(const std::string& text, const std::string* pair, int64_t max_length) const {
  std::vector<int64_t> a = Tokenize(text), b = pair ? Tokenize(*pair) : std::vector<int64_t>();
  const int64_t room = max_length - (pair ? 3 : 2);
  while (room >= 0 && static_cast<int64_t>(a.size() + b.size()) > room) {
    (a.size() > b.size() ? a : b).pop_back();  // longest_first
  }
  EncodedText out;
  out.ids.push_back(cls_id_);
  out.ids.insert(out.ids.end(), a.begin(), a.end());
  out.ids.push_back(sep_id_);
  out.token_type_ids.assign(out.ids.size(), 0);
  if (pair) {
    out.ids.insert(out.ids.end(), b.begin(), b.end());
    out.ids.push_back(sep_id_);
    out.token_type_ids.resize(out.ids.size(), 1);
  }
  return out;
}

}  // namespace trainerd
