// The worker's edge between LibTorch's exceptions and absl::Status.
#ifndef TRAINERD_WORKER_TRAINER_TORCH_STATUS_H_
#define TRAINERD_WORKER_TRAINER_TORCH_STATUS_H_

#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <c10/util/Exception.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_error.h"

namespace trainerd {

// Runs `fn`, returning its result, or a Status naming `context` for any exception:
// a StatusError keeps its code; std::invalid_argument (bad input) becomes INVALID_ARGUMENT; a failed allocation
// RESOURCE_EXHAUSTED; LibTorch's other errors and everything else INTERNAL. `fn` may itself return T, absl::StatusOr<T> or (for
// RunGuardedStatus) absl::Status.
template <typename T, typename Fn>
absl::StatusOr<T> RunGuarded(const std::string& context, Fn&& fn) {
  try {
    return fn();
  } catch (const StatusError& e) {
    return absl::Status(e.status().code(), absl::StrCat(context, ": ", e.status().message()));
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    if (what.find("can't allocate memory") != std::string::npos) {
      return absl::ResourceExhaustedError(absl::StrCat(context, ": ", what));
    }
    return absl::InternalError(absl::StrCat(context, ": ", what));
  } catch (const std::bad_alloc& e) {
    return absl::ResourceExhaustedError(absl::StrCat(context, ": ", e.what()));
  } catch (const std::invalid_argument& e) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(context, ": ", e.what()));
  }
}

template <typename Fn>
absl::Status RunGuardedStatus(const std::string& context, Fn&& fn) {
  absl::StatusOr<absl::Status> result = RunGuarded<absl::Status>(context, std::forward<Fn>(fn));
  return result.ok() ? *result : result.status();
}

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TRAINER_TORCH_STATUS_H_
