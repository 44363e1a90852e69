// trainer-worker's exit status: what trainerd reads from it, in one place for both.
// 2 means "the spec is invalid" and nothing else.
#ifndef TRAINERD_PROTOCOL_WORKER_EXIT_CODES_H_
#define TRAINERD_PROTOCOL_WORKER_EXIT_CODES_H_

namespace trainerd {

inline constexpr int kWorkerExitOk = 0;
inline constexpr int kWorkerExitFailed = 1;       // retried from the latest checkpoint
inline constexpr int kWorkerExitInvalidSpec = 2;  // retrying cannot help
inline constexpr int kWorkerExitStopped = 3;      // SIGTERM or a stop request: checkpoint saved
inline constexpr int kWorkerExitOutOfMemory = 4;  // over its memory limit: retrying cannot help

}  // namespace trainerd

#endif  // TRAINERD_PROTOCOL_WORKER_EXIT_CODES_H_
