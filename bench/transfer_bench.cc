// Uploads and downloads through a real trainerd on loopback (started by this program),
// side by side with `cp -r` of the same folder on the same disk: a folder of 8 files
// (--megabytes in all, 1024 by default) goes up with `trainer-cli upload`'s client
// (client/file_transfer.h: SHA-256 on both sides, 1 MiB chunks, fsynced before they are
// recorded) and comes back with its download, each timed and compared with cp.
//
//   transfer_bench [--megabytes M]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "client/file_transfer.h"
#include "tests/daemon_test_util.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

int Main(int argc, char** argv) {
  int64_t megabytes = 1024;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--megabytes") megabytes = std::atoll(argv[i + 1]);
  }
  testing::TempDir dir;
  fs::create_directories(dir / "folder");
  const int64_t per_file = std::max<int64_t>(1, megabytes / 8) << 20;
  std::string block(1 << 20, '\0');
  uint32_t x = 1;
  for (char& c : block) {
    x = x * 1664525 + 1013904223;
    c = static_cast<char>(x >> 24);
  }
  for (int f = 0; f < 8; ++f) {
    std::FILE* out = std::fopen((dir / ("folder/part-" + std::to_string(f) + ".bin")).c_str(), "wb");
    for (int64_t written = 0; written < per_file; written += static_cast<int64_t>(block.size())) {
      block[0] = static_cast<char>(f);  // no two files alike
      std::fwrite(block.data(), 1, block.size(), out);
    }
    std::fclose(out);
  }
  const double mb = static_cast<double>(8 * per_file) / 1e6;
  std::printf("folder: 8 files, %.0f MB\n", mb);
  ::sync();

  auto start = Clock::now();
  const std::string cp = std::string("cp -r ") + (dir / "folder") + " " + (dir / "copy");
  if (std::system(cp.c_str()) != 0) return 1;
  ::sync();  // cp's bytes on disk, as an upload's are (fsynced)
  const double cp_s = Seconds(start);

  testing::Daemon d(dir / "root", {"--user-quota", "1000G"});
  ClientOptions options;
  options.server = "127.0.0.1:" + std::to_string(d.port());
  options.token = d.admin_token();
  TrainerClient client(options);
  FileTransfer transfer(&client);
  start = Clock::now();
  auto uploaded = transfer.Upload(dir / "folder", "bench");
  const double up_s = Seconds(start);
  if (!uploaded.ok()) {
    std::fprintf(stderr, "upload: %s\n", std::string(uploaded.status().message()).c_str());
    return 1;
  }
  start = Clock::now();
  absl::Status downloaded = transfer.Download("bench", dir / "back");
  ::sync();
  const double down_s = Seconds(start);
  if (!downloaded.ok()) {
    std::fprintf(stderr, "download: %s\n", std::string(downloaded.message()).c_str());
    return 1;
  }
  std::printf("%-26s %8s %10s %8s\n", "", "seconds", "MB/s", "vs cp");
  std::printf("%-26s %8.2f %10.1f %7.2fx\n", "cp -r (and sync)", cp_s, mb / cp_s, 1.0);
  std::printf("%-26s %8.2f %10.1f %7.2fx\n", "trainer-cli upload", up_s, mb / up_s, cp_s / up_s);
  std::printf("%-26s %8.2f %10.1f %7.2fx\n", "trainer-cli download", down_s, mb / down_s, cp_s / down_s);
  return 0;
}

}  // namespace
}  // namespace trainerd

int main(int argc, char** argv) { return trainerd::Main(argc, argv); }
