#include "server/api/sweep_operations.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace trainerd {

using trainer::v1::Sweep;

absl::StatusOr<Sweep> SweepOperations::SweepFor(const Caller& caller, const std::string& id, Access access) const {
  absl::StatusOr<Sweep> sweep = sweeps_->view().Get(id);
  if (!sweep.ok()) return sweep.status();
  const std::string what = absl::StrCat("sweep ", id);
  absl::Status allowed = access == Access::kRead ? access_->CheckReadOwned(caller, what, sweep->owner_id())
                                                 : access_->CheckChangeOwned(caller, what, sweep->owner_id());
  if (!allowed.ok()) return allowed;
  return sweep;
}

absl::StatusOr<trainer::v1::SubmitSweepResponse> SweepOperations::SubmitSweep(
    const CallOrigin& origin, const trainer::v1::SubmitSweepRequest& request) const {
  std::string sweep_id;  // the audit names the sweep it made
  return RunAuthenticated(*access_, auditor_, "SubmitSweep", /*audited=*/true, origin, sweep_id,
                          [&](const Caller& caller) {
                            absl::StatusOr<trainer::v1::SubmitSweepResponse> submitted =
                                sweeps_->Submit(request, Submitter{caller.user, caller.user_id, caller.admin});
                            if (submitted.ok()) sweep_id = submitted->sweep_id();
                            return submitted;
                          });
}

absl::StatusOr<Sweep> SweepOperations::GetSweep(const CallOrigin& origin,
                                                const trainer::v1::GetSweepRequest& request) const {
  return RunAuthenticated(*access_, auditor_, "GetSweep", false, origin, request.sweep_id(),
                          [&](const Caller& caller) { return SweepFor(caller, request.sweep_id(), Access::kRead); });
}

absl::StatusOr<trainer::v1::ListSweepsResponse> SweepOperations::ListSweeps(
    const CallOrigin& origin, const trainer::v1::ListSweepsRequest& request) const {
  return RunAuthenticated(
      *access_, auditor_, "ListSweeps", false, origin, "",
      [&](const Caller& caller) -> absl::StatusOr<trainer::v1::ListSweepsResponse> {
        if (request.page_size() < 0) return absl::InvalidArgumentError("page_size: must be >= 0");
        const int limit = request.page_size() == 0 ? 50 : std::min(request.page_size(), 1000);
        absl::StatusOr<std::vector<Sweep>> sweeps = sweeps_->view().List(access_->ListOwner(caller, request.mine()), limit);
        if (!sweeps.ok()) return sweeps.status();
        trainer::v1::ListSweepsResponse response;
        for (Sweep& s : *sweeps) *response.add_sweeps() = std::move(s);
        return response;
      });
}

absl::StatusOr<Sweep> SweepOperations::CancelSweep(const CallOrigin& origin,
                                                   const trainer::v1::CancelSweepRequest& request) const {
  return RunAuthenticated(*access_, auditor_, "CancelSweep", true, origin, request.sweep_id(),
                          [&](const Caller& caller) -> absl::StatusOr<Sweep> {
                            if (auto sweep = SweepFor(caller, request.sweep_id(), Access::kChange); !sweep.ok()) {
                              return sweep.status();
                            }
                            return sweeps_->Cancel(request.sweep_id());
                          });
}

}  // namespace trainerd
