// The environment trainerd gives each rank it starts: the one list of names, read by
// trainer-worker and written by trainerd (or, under Slurm, by its rank script).
#ifndef TRAINERD_PROTOCOL_WORKER_ENVIRONMENT_H_
#define TRAINERD_PROTOCOL_WORKER_ENVIRONMENT_H_

namespace trainerd {

// Reaching trainerd's WorkerService.
inline constexpr char kEnvAddress[] = "TRAINERD_ADDRESS";        // host:port
inline constexpr char kEnvWorkerSecret[] = "TRAINERD_WORKER_SECRET";  // this attempt's secret
inline constexpr char kEnvJobId[] = "TRAINERD_JOB_ID";
inline constexpr char kEnvAttempt[] = "TRAINERD_ATTEMPT";        // 1, 2, ...
inline constexpr char kEnvTlsCa[] = "TRAINERD_TLS_CA";           // CA file that verifies trainerd; unset: plaintext

// The spec policy (spec/spec_policy.h) the worker checks its spec against again.
inline constexpr char kEnvDataDirs[] = "TRAINERD_DATA_DIRS";          // ':'-separated
inline constexpr char kEnvRegistryDir[] = "TRAINERD_REGISTRY_DIR";
inline constexpr char kEnvPrivateDir[] = "TRAINERD_PRIVATE_DIR";
inline constexpr char kEnvUserFileDirs[] = "TRAINERD_USER_FILE_DIRS";  // ':'-separated
inline constexpr char kEnvMaxJobMemory[] = "TRAINERD_MAX_JOB_MEMORY";  // bytes
inline constexpr char kEnvMaxThreads[] = "TRAINERD_MAX_THREADS";

// torchrun's variables, with torchrun's meanings.
inline constexpr char kEnvRank[] = "RANK";
inline constexpr char kEnvLocalRank[] = "LOCAL_RANK";
inline constexpr char kEnvWorldSize[] = "WORLD_SIZE";
inline constexpr char kEnvLocalWorldSize[] = "LOCAL_WORLD_SIZE";
inline constexpr char kEnvMasterAddr[] = "MASTER_ADDR";
inline constexpr char kEnvMasterPort[] = "MASTER_PORT";

}  // namespace trainerd

#endif  // TRAINERD_PROTOCOL_WORKER_ENVIRONMENT_H_
