// Where absl::Status becomes grpc::Status, and how gRPC calls' metadata is read: the
// gRPC side of the transport-free operations (job_operations.h).
#ifndef TRAINERD_SERVER_STATUS_UTIL_H_
#define TRAINERD_SERVER_STATUS_UTIL_H_

#include <chrono>
#include <functional>
#include <string>
#include <utility>

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "protocol/call_metadata.h"
#include "server/auth/call_origin.h"

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
absl::Status Answer(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return result.status();
  *response = std::move(*result);
  return absl::OkStatus();
}
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  return ToGrpcStatus(Answer(std::move(result), response));
}

// A gRPC status as absl's (the two share their codes).
inline absl::Status FromGrpcStatus(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// The value of a call's metadata `key`, or "" when the client sent none.
inline std::string MetadataValue(const grpc::ServerContextBase* context, const std::string& key) {
  auto it = context->client_metadata().find(key);
  return it == context->client_metadata().end() ? "" : std::string(it->second.data(), it->second.size());
}

// Where a gRPC call came from, and its credentials (its authorization metadata, its
// client certificate).
inline CallOrigin CallOriginOf(const grpc::ServerContextBase& context) {
  CallOrigin origin;
  origin.peer = context.peer();
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  origin.peer_certificate_verified = auth != nullptr && auth->IsPeerAuthenticated();
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find(kAuthorizationMetadata); it != metadata.end()) {
    origin.authorization = std::string(it->second.data(), it->second.size());
  }
  return origin;
}

// Told each finished RPC's method, status code and seconds, and whether it streamed
// (then the seconds are how long the client followed, not a latency): DaemonMetrics.
using RpcObserver = std::function<void(const std::string& method, grpc::StatusCode code, double seconds, bool streamed)>;

// Runs `call` (which returns the call's absl::Status) and tells `observe` (optional) how
// it ended and how long it took.
template <typename Call>
grpc::Status ObservedCall(const RpcObserver& observe, const char* method, Call&& call) {
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status = ToGrpcStatus(call());
  if (observe) {
    observe(method, status.error_code(), std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
            /*streamed=*/false);
  }
  return status;
}

}  // namespace trainerd

#endif  // TRAINERD_SERVER_STATUS_UTIL_H_
