// SweepOperations: what a caller may do with sweeps, whatever the transport (the gRPC
// SweepService and the HTTP API are thin adapters over it). Each operation
// authenticates the caller, applies the owner rules jobs have (AccessControl), audits
// changes and refusals, and answers with an absl::Status code.
//
// Threads: any; it keeps no state of its own.
#ifndef TRAINERD_SERVER_API_SWEEP_OPERATIONS_H_
#define TRAINERD_SERVER_API_SWEEP_OPERATIONS_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/api/call_auditor.h"
#include "server/auth/access_control.h"
#include "server/auth/call_origin.h"
#include "server/sweeps/sweep_coordinator.h"
#include "trainer/v1/sweep_service.pb.h"

namespace trainerd {

class SweepOperations {
 public:
  // Every pointer outlives this object.
  SweepOperations(SweepCoordinator* sweeps, const AccessControl* access, AuditLog* audit)
      : sweeps_(sweeps), access_(access), auditor_(audit) {}

  // proto/trainer/v1/sweep_service.proto says what each does; the audit log names them
  // by their gRPC method.
  absl::StatusOr<trainer::v1::SubmitSweepResponse> SubmitSweep(const CallOrigin& origin,
                                                               const trainer::v1::SubmitSweepRequest& request) const;
  absl::StatusOr<trainer::v1::Sweep> GetSweep(const CallOrigin& origin,
                                              const trainer::v1::GetSweepRequest& request) const;
  absl::StatusOr<trainer::v1::ListSweepsResponse> ListSweeps(const CallOrigin& origin,
                                                             const trainer::v1::ListSweepsRequest& request) const;
  absl::StatusOr<trainer::v1::Sweep> CancelSweep(const CallOrigin& origin,
                                                 const trainer::v1::CancelSweepRequest& request) const;

 private:
  enum class Access { kRead, kChange };
  // Sweep `id` when `caller` may read (kRead) or change (kChange) it.
  absl::StatusOr<trainer::v1::Sweep> SweepFor(const Caller& caller, const std::string& id, Access access) const;

  SweepCoordinator* const sweeps_;
  const AccessControl* const access_;
  const CallAuditor auditor_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_API_SWEEP_OPERATIONS_H_
