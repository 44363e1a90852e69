// What the operator decides about jobs: where they live, what runs them, how long they
// may be silent, and how they are restarted (trainerd's flags).
#ifndef TRAINERD_SERVER_JOBS_JOB_OPTIONS_H_
#define TRAINERD_SERVER_JOBS_JOB_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "spec/spec_policy.h"

namespace trainerd {

struct JobOptions {
  std::string data_root;                         // holds jobs/<id>/
  std::string worker_program;                    // trainer-worker
  std::vector<std::string> allowed_worker_dirs;  // where custom worker programs may live
  int32_t cpu_slots = 1;         // this machine's
  int32_t gpus = 0;              // this machine's
  int32_t threads_per_slot = 1;  // LibTorch threads of a rank whose spec leaves them at 0
  int32_t default_max_restarts = 3;
  // The highest priority a user who is not an admin may give a job.
  int32_t max_user_priority = 100;
  double heartbeat_timeout_s = 300;
  double grace_period_s = 30;
  double poll_interval_s = 0.1;
  // The address other machines reach this one at (rank 0's store when it runs here).
  std::string advertise_host = "127.0.0.1";
  // When trainerd serves TLS: the CA file its workers verify it with (TRAINERD_TLS_CA).
  std::string worker_tls_ca;
  // Where jobs' files may be and how large jobs may grow; workers get it too.
  SpecPolicy spec_policy;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_JOB_OPTIONS_H_
