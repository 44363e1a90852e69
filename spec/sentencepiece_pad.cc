#include "spec/sentencepiece_pad.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include "absl/strings/str_cat.h"
#include "spec/confined_file.h"

namespace trainerd {
namespace {

using google::protobuf::io::CodedInputStream;
using google::protobuf::internal::WireFormatLite;

constexpr int kTrainerSpecField = 2;  // ModelProto.trainer_spec
constexpr int kPadIdField = 43;       // TrainerSpec.pad_id
constexpr int64_t kDefaultPadId = -1;

// Reads fields until `field` of wire type `type`; false at the end or on bad bytes.
bool SeekField(CodedInputStream* in, int field, WireFormatLite::WireType type, bool* bad) {
  while (true) {
    const uint32_t tag = in->ReadTag();
    if (tag == 0) return false;
    if (WireFormatLite::GetTagFieldNumber(tag) == field && WireFormatLite::GetTagWireType(tag) == type) return true;
    if (!WireFormatLite::SkipField(in, tag)) {
      *bad = true;
      return false;
    }
  }
}

}  // namespace

absl::StatusOr<int64_t> SentencePiecePadIdOf(const std::string& bytes) {
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
  bool bad = false;
  if (!SeekField(&in, kTrainerSpecField, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, &bad)) {
    if (bad) return absl::InvalidArgumentError("not a sentencepiece model");
    return kDefaultPadId;
  }
  uint32_t length = 0;
  if (!in.ReadVarint32(&length) || length > bytes.size() - static_cast<size_t>(in.CurrentPosition())) {
    return absl::InvalidArgumentError("not a sentencepiece model");
  }
  const CodedInputStream::Limit limit = in.PushLimit(static_cast<int>(length));
  int64_t pad = kDefaultPadId;
  uint32_t value = 0;
  // The last occurrence wins, as protobuf's parser has it.
  while (SeekField(&in, kPadIdField, WireFormatLite::WIRETYPE_VARINT, &bad)) {
    if (!in.ReadVarint32(&value)) return absl::InvalidArgumentError("not a sentencepiece model");
    pad = static_cast<int32_t>(value);
  }
  // The fields end exactly at the message's end, or the bytes are not a ModelProto.
  if (bad || in.BytesUntilLimit() > 0) return absl::InvalidArgumentError("not a sentencepiece model");
  in.PopLimit(limit);
  return pad;
}

absl::StatusOr<int64_t> SentencePiecePadId(const std::string& path, const ReadRoots& roots) {
  absl::StatusOr<std::string> bytes = ReadConfined(path, roots, 64 << 20);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<int64_t> pad = SentencePiecePadIdOf(*bytes);
  if (!pad.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", pad.status().message()));
  return pad;
}

}  // namespace trainerd
