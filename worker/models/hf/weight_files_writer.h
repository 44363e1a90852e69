// WeightFilesWriter: writes a model's weight files (the plan of hf_weights.h: one
// model.safetensors, or save_pretrained's shards and their index) into a folder one
// tensor at a time, so that the whole model never has to be in one process's memory:
// a sharded run gathers one unit, writes its tensors and releases it before the next.
//
// The layout (every tensor's name, dtype and shape) is known before any data: each
// file's header is written first and each tensor's bytes go straight to their place.
// Files are written under temporary names (<file>.tmp.<pid>) and renamed into place,
// fsynced, only when every tensor has been written; the index comes last. The files are
// byte for byte what EncodeWeightFiles would have made of the same tensors.
#ifndef TRAINERD_WORKER_MODELS_HF_WEIGHT_FILES_WRITER_H_
#define TRAINERD_WORKER_MODELS_HF_WEIGHT_FILES_WRITER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/models/model.h"

namespace trainerd {

class WeightFilesWriter {
 public:
  // Creates the files of `layout` (names unique; tensors may be without data) in `dir`,
  // which must exist, with their headers. `prefix` names them as in PlanWeightShards.
  static absl::StatusOr<std::unique_ptr<WeightFilesWriter>> Create(const std::string& dir, const NamedTensors& layout,
                                                                   int64_t max_shard_bytes,
                                                                   const std::string& prefix);
  // Removes the temporary files unless Finish succeeded.
  ~WeightFilesWriter();
  WeightFilesWriter(const WeightFilesWriter&) = delete;
  WeightFilesWriter& operator=(const WeightFilesWriter&) = delete;

  // Whether the layout has a tensor of this name.
  bool Wants(const std::string& name) const { return places_.count(name) > 0; }
  // Writes the tensor `name` of the layout (the same dtype and shape; any device).
  // INVALID_ARGUMENT for another name, dtype or shape, or a tensor written twice.
  absl::Status Write(const std::string& name, const torch::Tensor& tensor);
  // FAILED_PRECONDITION when a tensor of the layout was not written; else fsyncs every
  // file, renames it into place and writes the index (several files).
  absl::Status Finish();
  // The files' names in the folder, index included.
  std::vector<std::string> FileNames() const;

 private:
  struct File {
    std::string name;       // in the folder
    std::string tmp_path;
    int fd = -1;
    uint64_t data_start = 0;  // the header's size
  };
  struct Place {
    size_t file;
    uint64_t offset;  // in the file
    torch::ScalarType dtype;
    std::vector<int64_t> shape;
    bool written = false;
  };

  explicit WeightFilesWriter(std::string dir) : dir_(std::move(dir)) {}
  absl::Status CloseAll();

  std::string dir_;
  std::vector<File> files_;
  std::map<std::string, Place> places_;
  std::string index_json_;  // empty: one file
  std::string prefix_;
  bool finished_ = false;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_HF_WEIGHT_FILES_WRITER_H_
