// trainer-worker's command line as trainerd starts it: the flags' one home. The worker
// defines its options by these names; trainerd's launch plan fills WorkerCommandLine,
// and each launcher turns it into argv (the Slurm script adds the resume point itself,
// since a requeued run resumes from its newest checkpoint).
#ifndef TRAINERD_PROTOCOL_WORKER_COMMAND_LINE_H_
#define TRAINERD_PROTOCOL_WORKER_COMMAND_LINE_H_

#include <cstdint>
#include <string>
#include <vector>

namespace trainerd {

inline constexpr char kWorkerFlagSpec[] = "--spec";
inline constexpr char kWorkerFlagSet[] = "--set";
inline constexpr char kWorkerFlagResume[] = "--resume-from-checkpoint";
inline constexpr char kWorkerFlagHeartbeatFile[] = "--heartbeat-file";
// Stop at this step with a checkpoint (Job.stop_at_step: a sweep's rung).
inline constexpr char kWorkerFlagStopAtStep[] = "--stop-at-step";
// The resume point that means the newest valid checkpoint in output_dir (HF's
// resume_from_checkpoint=True).
inline constexpr char kResumeFromLatest[] = "true";

struct WorkerCommandLine {
  std::string spec_path;
  std::vector<std::string> overrides;  // "dotted.field=value", each after --set
  std::string resume_from;             // "": from the start; a folder, or kResumeFromLatest
  std::string heartbeat_file;          // "": none
  int64_t stop_at_step = 0;            // 0: train to the end

  // argv without argv[0]; the resume point only when `with_resume`.
  std::vector<std::string> Args(bool with_resume = true) const {
    std::vector<std::string> args = {kWorkerFlagSpec, spec_path};
    for (const std::string& set : overrides) args.insert(args.end(), {kWorkerFlagSet, set});
    if (with_resume && !resume_from.empty()) args.insert(args.end(), {kWorkerFlagResume, resume_from});
    if (!heartbeat_file.empty()) args.insert(args.end(), {kWorkerFlagHeartbeatFile, heartbeat_file});
    if (stop_at_step > 0) args.insert(args.end(), {kWorkerFlagStopAtStep, std::to_string(stop_at_step)});
    return args;
  }
};

}  // namespace trainerd

#endif  // TRAINERD_PROTOCOL_WORKER_COMMAND_LINE_H_
