// Admission: whether a submission may become a job, and the job it becomes. Every
// problem of the request is named in one INVALID_ARGUMENT; an accepted job gets its
// folder and its spec file before it is queued.
#ifndef TRAINERD_SERVER_JOBS_JOB_ADMISSION_H_
#define TRAINERD_SERVER_JOBS_JOB_ADMISSION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/jobs/job_options.h"
#include "server/launch/node_slots.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

// Who submits a job.
struct Submitter {
  std::string user;      // the name, shown as the job's owner
  int64_t user_id = 0;   // the account, which the job belongs to
  bool admin = false;    // may use any priority
  // A sweep submits its trials on its owner's behalf: the job is trial `trial_number`
  // of sweep `sweep_id` ("": submitted by the user).
  std::string sweep_id = {};
  int32_t trial_number = 0;
};

// The QUEUED job that `request` from `submitter` becomes, with what the submitter should
// know (warnings); its folder is created and its spec written there unless the request
// is validate_only (then the job has no id and nothing is written). `capacity`: the
// most CPU slots one job can have (all nodes together) and the most GPUs of one node.
absl::StatusOr<trainer::v1::SubmitJobResponse> AdmitJob(const trainer::v1::SubmitJobRequest& request,
                                                        const Submitter& submitter, const NodeSlots& capacity,
                                                        const JobOptions& options);

// A new id: `prefix` ('j' for jobs, 's' for sweeps) and 11 random hex digits.
std::string NewId(char prefix);

// Whether `id` has the form of the job ids AdmitJob gives ("j" and 11 hex digits): only
// such a name may become a folder path.
bool IsJobId(const std::string& id);

// OK while a job's custom worker_program is still the file resolved at submission, in
// one of `allowed_dirs`.
absl::Status CheckWorkerProgram(const trainer::v1::Job& job, const std::vector<std::string>& allowed_dirs);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_JOB_ADMISSION_H_
