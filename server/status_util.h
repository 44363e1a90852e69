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

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// Moves an OK result into the call's response; otherwise returns its error.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

// The value of a call's metadata `key`, or "" when the client sent none.
inline std::string MetadataValue(const grpc::ServerContext* context, const std::string& key) {
  auto it = context->client_metadata().find(key);
  return it == context->client_metadata().end() ? "" : std::string(it->second.data(), it->second.size());
}

}  // namespace trainerd

#endif  // TRAINERD_SERVER_STATUS_UTIL_H_
