// Where absl::Status becomes grpc::Status, and how calls' metadata is read.
#ifndef TRAINERD_SERVER_STATUS_UTIL_H_
#define TRAINERD_SERVER_STATUS_UTIL_H_

#include <string>
#include <utility>

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace trainerd {

// The longest error message sent: gRPC carries it in a header, and clients refuse
// headers over 8 KiB (a spec with hundreds of problems would otherwise reach the
// caller as RESOURCE_EXHAUSTED instead of its INVALID_ARGUMENT).
inline constexpr size_t kMaxStatusMessageBytes = 4096;

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  std::string message(s.message());
  if (message.size() > kMaxStatusMessageBytes) {
    const size_t cut = message.rfind('\n', kMaxStatusMessageBytes);
    message.resize(cut == std::string::npos ? kMaxStatusMessageBytes : cut);
    message += "\n... (more problems not shown)";
  }
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::move(message));
}

// Moves an OK result into the call's response; otherwise returns its error.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

// `make(value)` for an OK result, else its error: a store's answer shaped into a response.
template <typename T, typename Make>
auto Respond(absl::StatusOr<T> result, Make make) -> absl::StatusOr<decltype(make(std::move(*result)))> {
  if (!result.ok()) return result.status();
  return make(std::move(*result));
}

// "OK", "PERMISSION_DENIED", ...: a gRPC code's name (gRPC and absl share the codes).
inline std::string StatusCodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// The value of a call's metadata `key`, or "" when the client sent none.
inline std::string MetadataValue(const grpc::ServerContext* context, const std::string& key) {
  auto it = context->client_metadata().find(key);
  return it == context->client_metadata().end() ? "" : std::string(it->second.data(), it->second.size());
}

}  // namespace trainerd

#endif  // TRAINERD_SERVER_STATUS_UTIL_H_
