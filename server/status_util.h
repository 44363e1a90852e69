// The one place where absl::Status becomes grpc::Status.
#ifndef TRAINERD_SERVER_STATUS_UTIL_H_
#define TRAINERD_SERVER_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace trainerd {

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace trainerd

#endif  // TRAINERD_SERVER_STATUS_UTIL_H_
