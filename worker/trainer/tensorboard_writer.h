// TensorBoard event files (HF's report_to: tensorboard): scalars at their global step.
//
// A file is a sequence of records, each
//   uint64 length (little-endian), uint32 masked CRC-32C of those 8 bytes,
//   `length` bytes of a serialized tensorboard.Event, uint32 masked CRC-32C of them,
// where masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8, as TensorFlow's
// record writer defines it. The first event of a file carries file_version only.
//
// Each run writes a new file (events.out.tfevents.<unix seconds>.<host>.<pid>) in its
// logging_dir: a resumed run adds its file beside the earlier ones, and TensorBoard
// reads a folder's files as one run. A record torn by a crash stays in its own file.
#ifndef TRAINERD_WORKER_TRAINER_TENSORBOARD_WRITER_H_
#define TRAINERD_WORKER_TRAINER_TENSORBOARD_WRITER_H_

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace trainerd {

// CRC-32C (Castagnoli) of `data`, and TensorFlow's masking of it.
uint32_t Crc32c(std::string_view data);
uint32_t MaskCrc(uint32_t crc);

class TensorBoardWriter {
 public:
  // Creates `log_dir` (and its parents) and a new events file in it.
  static absl::StatusOr<std::unique_ptr<TensorBoardWriter>> Create(const std::string& log_dir);
  ~TensorBoardWriter();

  // One event with a scalar per metric (its name as the tag), at `step`; flushed.
  absl::Status AddScalars(int64_t step, double wall_time, const std::map<std::string, double>& scalars);

  const std::string& path() const { return path_; }

 private:
  TensorBoardWriter(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}
  absl::Status WriteRecord(const std::string& data);

  const std::string path_;
  std::FILE* const file_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TRAINER_TENSORBOARD_WRITER_H_
