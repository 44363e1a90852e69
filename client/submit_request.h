// The SubmitJobRequest trainer-cli's submit and validate send, and validate's check
// when trainerd cannot be reached.
#ifndef TRAINERD_CLIENT_SUBMIT_REQUEST_H_
#define TRAINERD_CLIENT_SUBMIT_REQUEST_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/cli_commands.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

// The request `submit` sends and `validate` checks: the spec file read (its loader
// warnings printed), --set applied, and the flags. The spec is not checked here: that
// is trainerd's to do, with its path policy and its files (this may be another machine).
absl::StatusOr<trainer::v1::SubmitJobRequest> BuildSubmitRequest(const CliArgs& args, bool validate_only);

// The resources the flags ask for (--ranks, --gpus-per-rank, --time-limit), checked.
absl::StatusOr<trainer::v1::Resources> ResourcesFromArgs(const CliArgs& args);

// The checks trainerd runs on a submission, on this machine's files and without
// trainerd's path policy (which only trainerd knows): OK, or INVALID_ARGUMENT listing
// every problem.
absl::Status CheckLocally(const trainer::v1::SubmitJobRequest& request);

}  // namespace trainerd

#endif  // TRAINERD_CLIENT_SUBMIT_REQUEST_H_
