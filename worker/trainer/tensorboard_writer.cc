#include "worker/trainer/tensorboard_writer.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "tensorboard/event.pb.h"

namespace trainerd {
namespace {

// The reflected CRC-32C table (polynomial 0x82f63b78).
const std::array<uint32_t, 256>& Crc32cTable() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

void PutLittleEndian(uint64_t value, int bytes, std::string* out) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

}  // namespace

uint32_t Crc32c(std::string_view data) {
  const auto& table = Crc32cTable();
  uint32_t crc = 0xffffffffu;
  for (unsigned char byte : data) crc = table[(crc ^ byte) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

uint32_t MaskCrc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

absl::StatusOr<std::unique_ptr<TensorBoardWriter>> TensorBoardWriter::Create(const std::string& log_dir) {
  std::error_code ec;
  std::filesystem::create_directories(log_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("training_args.logging_dir: cannot create ", log_dir, ": ", ec.message()));
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const std::string path = absl::StrCat(log_dir, "/events.out.tfevents.",
                                        std::chrono::duration_cast<std::chrono::seconds>(now).count(), ".", host, ".",
                                        ::getpid());
  std::FILE* file = std::fopen(path.c_str(), "wbx");  // a new file, never somebody's
  if (file == nullptr) return Errno("create", path);
  std::unique_ptr<TensorBoardWriter> writer(new TensorBoardWriter(path, file));
  tensorboard::Event version;
  version.set_wall_time(std::chrono::duration<double>(now).count());
  version.set_file_version("brain.Event:2");
  if (absl::Status s = writer->WriteRecord(version.SerializeAsString()); !s.ok()) return s;
  return writer;
}

TensorBoardWriter::~TensorBoardWriter() { std::fclose(file_); }

absl::Status TensorBoardWriter::AddScalars(int64_t step, double wall_time,
                                           const std::map<std::string, double>& scalars) {
  tensorboard::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  for (const auto& [tag, value] : scalars) {
    tensorboard::Summary::Value* v = event.mutable_summary()->add_value();
    v->set_tag(tag);
    v->set_simple_value(static_cast<float>(value));
  }
  return WriteRecord(event.SerializeAsString());
}

absl::Status TensorBoardWriter::WriteRecord(const std::string& data) {
  std::string header;
  PutLittleEndian(data.size(), 8, &header);
  std::string record = header;
  PutLittleEndian(MaskCrc(Crc32c(header)), 4, &record);
  record += data;
  PutLittleEndian(MaskCrc(Crc32c(data)), 4, &record);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() || std::fflush(file_) != 0) {
    return Errno("write", path_);
  }
  return absl::OkStatus();
}

}  // namespace trainerd
