#include "worker/models/hf/weight_files_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "worker/models/hf/hf_weights.h"
#include "worker/models/safetensors.h"

namespace trainerd {
namespace {

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// Writes all of `size` bytes at `offset`.
absl::Status WriteAt(int fd, const std::string& path, const char* data, size_t size, uint64_t offset) {
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("write", path);
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<WeightFilesWriter>> WeightFilesWriter::Create(const std::string& dir,
                                                                            const NamedTensors& layout,
                                                                            int64_t max_shard_bytes,
                                                                            const std::string& prefix) {
  std::unique_ptr<WeightFilesWriter> writer(new WeightFilesWriter(dir));
  writer->prefix_ = prefix;
  const std::vector<WeightShard> shards = PlanWeightShards(layout, max_shard_bytes, prefix);
  if (shards.size() > 1) writer->index_json_ = WeightIndexJson(layout, shards);
  for (const WeightShard& shard : shards) {
    NamedTensors part;
    for (size_t k : shard.tensors) part.push_back(layout[k]);
    std::vector<uint64_t> begins;
    const std::string header = SafetensorsHeader(part, {{"format", "pt"}}, &begins);
    File file;
    file.name = shard.file;
    file.tmp_path = absl::StrCat(dir, "/", shard.file, ".tmp.", ::getpid());
    file.data_start = header.size();
    ::unlink(file.tmp_path.c_str());  // an earlier process's, with this pid
    file.fd = ::open(file.tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (file.fd < 0) return Errno("create", file.tmp_path);
    writer->files_.push_back(file);
    if (absl::Status s = WriteAt(file.fd, file.tmp_path, header.data(), header.size(), 0); !s.ok()) return s;
    for (size_t i = 0; i < part.size(); ++i) {
      const torch::Tensor& t = part[i].second;
      Place place{writer->files_.size() - 1, file.data_start + begins[i], t.scalar_type(), t.sizes().vec()};
      if (!writer->places_.emplace(part[i].first, place).second) {
        return absl::InvalidArgumentError(absl::StrCat("weights: ", part[i].first, " appears twice"));
      }
    }
  }
  return writer;
}

WeightFilesWriter::~WeightFilesWriter() {
  (void)CloseAll();
  if (finished_) return;
  for (const File& file : files_) ::unlink(file.tmp_path.c_str());
}

absl::Status WeightFilesWriter::CloseAll() {
  absl::Status status;
  for (File& file : files_) {
    if (file.fd >= 0 && ::close(file.fd) != 0 && status.ok()) status = Errno("close", file.tmp_path);
    file.fd = -1;
  }
  return status;
}

absl::Status WeightFilesWriter::Write(const std::string& name, const torch::Tensor& tensor) {
  auto it = places_.find(name);
  if (it == places_.end()) return absl::InvalidArgumentError(absl::StrCat("weights: ", name, " is not in the layout"));
  Place& place = it->second;
  if (place.written) return absl::InvalidArgumentError(absl::StrCat("weights: ", name, " was written twice"));
  if (tensor.scalar_type() != place.dtype || tensor.sizes().vec() != place.shape) {
    return absl::InvalidArgumentError(absl::StrCat("weights: ", name, " has another dtype or shape than its layout"));
  }
  const torch::Tensor c = tensor.detach().to(torch::kCPU).contiguous();
  const File& file = files_[place.file];
  if (absl::Status s = WriteAt(file.fd, file.tmp_path, static_cast<const char*>(c.data_ptr()),
                               static_cast<size_t>(c.numel()) * c.element_size(), place.offset);
      !s.ok()) {
    return s;
  }
  place.written = true;
  return absl::OkStatus();
}

absl::Status WeightFilesWriter::Finish() {
  for (const auto& [name, place] : places_) {
    if (!place.written) return absl::FailedPreconditionError(absl::StrCat("weights: ", name, " was never written"));
  }
  for (const File& file : files_) {
    if (::fsync(file.fd) != 0) return Errno("fsync", file.tmp_path);
  }
  if (absl::Status s = CloseAll(); !s.ok()) return s;
  for (const File& file : files_) {
    const std::string path = absl::StrCat(dir_, "/", file.name);
    if (::rename(file.tmp_path.c_str(), path.c_str()) != 0) return Errno("rename to", path);
  }
  finished_ = true;  // the files are in place: nothing to remove any more
  if (!index_json_.empty()) {
    const std::string index = absl::StrCat(dir_, "/", prefix_, ".safetensors.index.json");
    if (absl::Status s = WriteFileAtomically(index, index_json_); !s.ok()) return s;
  }
  return SyncPath(dir_);
}

std::vector<std::string> WeightFilesWriter::FileNames() const {
  std::vector<std::string> names;
  for (const File& file : files_) names.push_back(file.name);
  if (!index_json_.empty()) names.push_back(prefix_ + ".safetensors.index.json");
  return names;
}

}  // namespace trainerd
