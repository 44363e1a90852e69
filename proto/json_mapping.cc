#include "proto/json_mapping.h"

#include <google/protobuf/util/json_util.h>

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

absl::Status FromJson(std::string_view json, google::protobuf::Message* message, std::string_view what) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message, options);
  if (status.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(std::string(what), ": ", std::string(status.message())));
}

}  // namespace trainerd
