// The API's JSON form: protobuf's own JSON mapping with the .proto field names
// (snake_case) and every field printed, as `trainer-cli --json` prints and the HTTP API
// sends and reads. One home, so the two never drift apart.
#ifndef TRAINERD_PROTO_JSON_MAPPING_H_
#define TRAINERD_PROTO_JSON_MAPPING_H_

#include <google/protobuf/message.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace trainerd {

// `message` as JSON (field names as in the .proto, defaults printed, enums by name).
std::string ToJson(const google::protobuf::Message& message);
// Parses `json` into `message` (either field spelling; enums by name or number). An
// unknown field or a malformed document is INVALID_ARGUMENT naming what the parser
// found, prefixed with `what` ("request body: ...").
absl::Status FromJson(std::string_view json, google::protobuf::Message* message, std::string_view what);

}  // namespace trainerd

#endif  // TRAINERD_PROTO_JSON_MAPPING_H_
