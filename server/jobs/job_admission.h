// Admission: whether a submission may become a job, and the job it becomes. Every
// problem of the request is named in one INVALID_ARGUMENT; an accepted job gets its
// folder and its spec file before it is queued.
#ifndef TRAINERD_SERVER_JOBS_JOB_ADMISSION_H_
#define TRAINERD_SERVER_JOBS_JOB_ADMISSION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/jobs/job_options.h"
#include "server/launch/node_slots.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

// The QUEUED job that `request` from user `owner` becomes, its folder created and its
// spec written there. `capacity`: the most CPU slots one job can have (all nodes
// together) and the most GPUs of one node.
absl::StatusOr<trainer::v1::Job> AdmitJob(const trainer::v1::SubmitJobRequest& request, const std::string& owner,
                                          const NodeSlots& capacity, const JobOptions& options);

// Whether `id` has the form of the job ids AdmitJob gives ("j" and 11 hex digits): only
// such a name may become a folder path.
bool IsJobId(const std::string& id);

// OK while a job's custom worker_program is still the file resolved at submission, in
// one of `allowed_dirs`.
absl::Status CheckWorkerProgram(const trainer::v1::Job& job, const std::vector<std::string>& allowed_dirs);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_JOB_ADMISSION_H_
