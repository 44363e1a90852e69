#include "server/jobs/job_state.h"

#include <set>
#include <utility>

namespace trainerd {

using namespace trainer::v1;  // the JobState values

bool CanTransition(JobState from, JobState to) {
  static const std::set<std::pair<JobState, JobState>> kAllowed = {
      {QUEUED, STARTING},       {QUEUED, CANCELLED},
      {STARTING, RUNNING},      {STARTING, RESTARTING}, {STARTING, FAILED},    {STARTING, CANCELLING},
      {RUNNING, SUCCEEDED},     {RUNNING, RESTARTING},  {RUNNING, FAILED},     {RUNNING, CANCELLING},
      {RESTARTING, STARTING},   {RESTARTING, FAILED},   {RESTARTING, CANCELLING},
      {RESTARTING, CANCELLED},
      {CANCELLING, CANCELLED},  {CANCELLING, SUCCEEDED}, {CANCELLING, FAILED},
      {SUCCEEDED, QUEUED},      {FAILED, QUEUED},       {CANCELLED, QUEUED},
  };
  return kAllowed.count({from, to}) > 0;
}

bool IsTerminal(JobState s) { return s == SUCCEEDED || s == FAILED || s == CANCELLED; }

bool HasWorkers(JobState s) { return s == STARTING || s == RUNNING || s == CANCELLING; }

std::string StateName(JobState s) { return JobState_Name(s); }

}  // namespace trainerd
