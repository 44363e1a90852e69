// StatusError: an absl::Status thrown through code that reports errors by exception
// (the worker's training loop, its callbacks and its sharding), so that the edge that
// catches it (worker/trainer/torch_status.h's RunGuarded) returns it with its code intact.
#ifndef TRAINERD_COMMON_STATUS_ERROR_H_
#define TRAINERD_COMMON_STATUS_ERROR_H_

#include <stdexcept>
#include <string>
#include <utility>

#include "absl/status/status.h"

namespace trainerd {

class StatusError : public std::runtime_error {
 public:
  explicit StatusError(absl::Status status)
      : std::runtime_error(std::string(status.message())), status_(std::move(status)) {}
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

}  // namespace trainerd

#endif  // TRAINERD_COMMON_STATUS_ERROR_H_
