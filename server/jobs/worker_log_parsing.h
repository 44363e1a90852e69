// Turning a worker's output into log lines, metric points and events.
//
// Two files per job are tailed: the worker's stdout/stderr log (one file per attempt
// and rank; spdlog lines "2026-01-02T03:04:05.678 info text") and the JSON training
// log, trainer_log.jsonl (protocol/training_record.h), which carries metrics, progress
// and "checkpoint" records.
#ifndef TRAINERD_SERVER_JOBS_WORKER_LOG_PARSING_H_
#define TRAINERD_SERVER_JOBS_WORKER_LOG_PARSING_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "protocol/training_record.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

// Reads whole lines appended to `path` since `*offset` (a trailing partial line is
// left for next time) and advances `*offset` past them. At most `max_bytes` per call.
std::vector<std::string> ReadNewLines(const std::string& path, int64_t* offset, int64_t max_bytes = 1 << 20);

// A worker log line: level from spdlog's pattern, else "info".
trainer::v1::LogLine ParseLogLine(const std::string& line, int32_t rank, int32_t attempt, int64_t now_ms);

// The text of the last error-level line among the last `window` bytes of a worker's log
// (its reason to exit, e.g. "saving ... failed: write ...: No space left on device"),
// without the time stamp and level, at most 300 characters; "" when there is none.
std::string LastErrorMessage(const std::string& log_path, int64_t window = 64 << 10);

// A training record's metrics as points of the split its kind names (train_end's
// belong to train). A checkpoint record has none.
std::vector<trainer::v1::MetricPoint> MetricPoints(const TrainingRecord& record);

// Applies a record to a job's progress summary.
void UpdateProgress(const TrainingRecord& record, trainer::v1::Progress* progress);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_WORKER_LOG_PARSING_H_
