// The job state machine: which transitions are allowed (the table in
// proto/trainer/v1/job_service.proto), and names for people.
#ifndef TRAINERD_SERVER_JOBS_JOB_STATE_H_
#define TRAINERD_SERVER_JOBS_JOB_STATE_H_

#include <string>

#include "trainer/v1/job_service.pb.h"

namespace trainerd {

using trainer::v1::JobState;

bool CanTransition(JobState from, JobState to);
bool IsTerminal(JobState state);
// True while worker processes may exist for the job.
bool HasWorkers(JobState state);
std::string StateName(JobState state);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_JOB_STATE_H_
