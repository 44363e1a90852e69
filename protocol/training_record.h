// One line of trainer_log.jsonl: the training record trainer-worker writes and trainerd
// reads (progress, metrics, checkpoints). One definition, one writer, one parser.
//
//   {"kind":"train_begin","time":1767225590.5,"step":0,"max_steps":100,"epoch":0}
//   {"kind":"train","time":1767225600.123,"step":40,"max_steps":100,"epoch":0.4,
//    "loss":0.51,"learning_rate":0.001,...}
//   {"kind":"checkpoint",...,"size_bytes":123456,"path":"/.../checkpoint-40"}
//
// Numbers that are not finite are written as null (JSON has no NaN) and read back as
// absent. Fields are written in this order: kind, time, step, max_steps, epoch, the
// metrics by name, the text fields by name.
#ifndef TRAINERD_PROTOCOL_TRAINING_RECORD_H_
#define TRAINERD_PROTOCOL_TRAINING_RECORD_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace trainerd {

// The kinds of record.
// A run begins (at step 0, or at the step of the checkpoint it resumed from).
inline constexpr char kRecordTrainBegin[] = "train_begin";
inline constexpr char kRecordTrain[] = "train";
inline constexpr char kRecordEval[] = "eval";
inline constexpr char kRecordTest[] = "test";
inline constexpr char kRecordTrainEnd[] = "train_end";
inline constexpr char kRecordCheckpoint[] = "checkpoint";
// A checkpoint record's fields.
inline constexpr char kCheckpointPathField[] = "path";         // text
inline constexpr char kCheckpointBytesField[] = "size_bytes";  // metric
// A train_begin record's checkpoint folder, when the run resumed from one.
inline constexpr char kResumedFromField[] = "resumed_from";  // text

struct TrainingRecord {
  std::string kind;
  double time = 0;  // Unix seconds
  int64_t step = 0;
  int64_t max_steps = 0;
  double epoch = 0;
  std::map<std::string, double> metrics;
  std::map<std::string, std::string> text;
};

// The record as one JSON line (no newline).
std::string FormatTrainingRecord(const TrainingRecord& record);

// The record of one line; nullopt for a line that is not a JSON object with a string
// "kind" (a torn last line, a foreign line). Fields of the wrong type are ignored, never
// fatal: the file is written by a process trainerd does not trust blindly.
std::optional<TrainingRecord> ParseTrainingRecord(const std::string& line);

}  // namespace trainerd

#endif  // TRAINERD_PROTOCOL_TRAINING_RECORD_H_
