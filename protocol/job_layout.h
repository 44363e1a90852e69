// The folders and files of a job, as trainerd creates them and trainer-worker writes
// into them: the one definition of their names.
//
//   <data-root>/jobs/<id>/       JobDir
//     spec.json                  the spec as submitted, defaults filled in
//     output/                    the job's output_dir
//       trainer_log.jsonl        the training records (protocol/training_record.h)
//       checkpoint-<step>/       CheckpointDirName; complete once MANIFEST.json exists
//         MANIFEST.json          every file's size and CRC-32, written last
//         trainer_state.json     HF's TrainerState (also in output/ at the end)
//     deleted-owner              a deleted job whose folder was kept: its owner, who may
//                                still delete the folder (DeleteJob with delete_files)
//     attempt-<n>/               AttemptDir: one per run of the job
//       rank<r>.log              each rank's stdout and stderr
//       heartbeat, heartbeat-<r> touched by each rank as it makes progress
//       .secret                  the attempt's WorkerService secret (owner-only)
//
// A rank's liveness reaches trainerd two ways, on purpose: the heartbeat file, and the
// WorkerService heartbeat. The file works without the network (a rank whose channel
// to trainerd cannot connect, or a trainerd restarted in between, still sees it); the
// RPC is the only way trainerd can answer "stop" to a rank on another machine.
#ifndef TRAINERD_PROTOCOL_JOB_LAYOUT_H_
#define TRAINERD_PROTOCOL_JOB_LAYOUT_H_

#include <cstdint>
#include <string>

namespace trainerd {

inline constexpr char kSpecFile[] = "spec.json";
inline constexpr char kOutputDirName[] = "output";
inline constexpr char kTrainingLogFile[] = "trainer_log.jsonl";
inline constexpr char kCheckpointPrefix[] = "checkpoint-";
inline constexpr char kManifestFile[] = "MANIFEST.json";
inline constexpr char kTrainerStateFile[] = "trainer_state.json";  // HF's, in output_dir and each checkpoint
inline constexpr char kAttemptSecretFile[] = ".secret";
inline constexpr char kDeletedOwnerFile[] = "deleted-owner";

inline std::string JobDir(const std::string& data_root, const std::string& job_id) {
  return data_root + "/jobs/" + job_id;
}
inline std::string AttemptDirName(int32_t attempt) { return "attempt-" + std::to_string(attempt); }
inline std::string AttemptDir(const std::string& data_root, const std::string& job_id, int32_t attempt) {
  return JobDir(data_root, job_id) + "/" + AttemptDirName(attempt);
}
inline std::string RankLogName(int32_t rank) { return "rank" + std::to_string(rank) + ".log"; }
inline std::string HeartbeatName(int32_t rank) {
  return rank == 0 ? std::string("heartbeat") : "heartbeat-" + std::to_string(rank);
}
inline std::string CheckpointDirName(int64_t step) { return kCheckpointPrefix + std::to_string(step); }

}  // namespace trainerd

#endif  // TRAINERD_PROTOCOL_JOB_LAYOUT_H_
