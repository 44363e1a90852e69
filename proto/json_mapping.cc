#include "proto/json_mapping.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"

namespace trainerd {

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  // Printing fails only for messages that cannot exist here (Any with an unknown type).
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

namespace {

// Where the array that starts at json[open] (a '[') ends: the index of its ']'.
size_t MatchingBracket(const std::string& json, size_t open) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = open; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if ((c == ']' || c == '}') && --depth == 0) {
      return i;
    }
  }
  return std::string::npos;
}

// The elements of array `field` in ToJson(message), without the brackets; `*open` and
// `*close` (when not null) say where the brackets are.
std::string ArrayBody(const std::string& json, const std::string& field, size_t* open = nullptr,
                      size_t* close = nullptr) {
  const std::string key = "\"" + field + "\":[";
  const size_t at = json.find(key);
  if (at == std::string::npos) return "";
  const size_t start = at + key.size() - 1;
  const size_t end = MatchingBracket(json, start);
  if (end == std::string::npos) return "";
  if (open != nullptr) *open = start;
  if (close != nullptr) *close = end;
  return json.substr(start + 1, end - start - 1);
}

}  // namespace

std::string ToJsonInChunks(const google::protobuf::Message& message, const std::string& field, int chunk) {
  const google::protobuf::FieldDescriptor* repeated = message.GetDescriptor()->FindFieldByName(field);
  const google::protobuf::Reflection* reflection = message.GetReflection();
  if (repeated == nullptr || !repeated->is_repeated() ||
      repeated->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE || chunk <= 0) {
    return ToJson(message);
  }
  // The message without the field, with an empty array where the elements go.
  std::unique_ptr<google::protobuf::Message> rest(message.New());
  rest->CopyFrom(message);
  rest->GetReflection()->ClearField(rest.get(), repeated);
  const std::string outer = ToJson(*rest);
  size_t open = 0, close = 0;
  ArrayBody(outer, field, &open, &close);  // preserve_proto_field_names: the .proto name
  if (open == 0) return ToJson(message);
  std::string out = outer.substr(0, open + 1);
  const int size = reflection->FieldSize(message, repeated);
  for (int begin = 0; begin < size; begin += chunk) {
    std::unique_ptr<google::protobuf::Message> part(message.New());
    for (int i = begin; i < std::min(size, begin + chunk); ++i) {
      part->GetReflection()->AddMessage(part.get(), repeated)->CopyFrom(reflection->GetRepeatedMessage(message, repeated, i));
    }
    if (begin > 0) out += ',';
    out += ArrayBody(ToJson(*part), field);
  }
  out += outer.substr(close);
  return out;
}

absl::Status FromJson(std::string_view json, google::protobuf::Message* message, std::string_view what) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message, options);
  if (status.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(std::string(what), ": ", std::string(status.message())));
}

}  // namespace trainerd
