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
// ToJson(message) for a message with one long repeated message field `field` (a
// GetMetricsResponse's 100,000 points): the same text, printed `chunk` elements at a
// time. protobuf's printer needs several KB per element while it works (700 MB for
// 100,000 metric points); this way it never holds more than one chunk.
std::string ToJsonInChunks(const google::protobuf::Message& message, const std::string& field, int chunk = 1000);
// Parses `json` into `message` (either field spelling; enums by name or number). An
// unknown field or a malformed document is INVALID_ARGUMENT naming what the parser
// found, prefixed with `what` ("request body: ...").
absl::Status FromJson(std::string_view json, google::protobuf::Message* message, std::string_view what);

}  // namespace trainerd

#endif  // TRAINERD_PROTO_JSON_MAPPING_H_
