#include "worker/trainer/tensorboard_callback.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace trainerd {

namespace fs = std::filesystem;

std::string TensorBoardCallback::Tag(const std::string& name) {
  if (absl::StartsWith(name, "eval_")) return "eval/" + name.substr(5);
  if (absl::StartsWith(name, "test_")) return "test/" + name.substr(5);
  return "train/" + name;
}

void TensorBoardCallback::on_log(const TrainingArguments&, TrainerState& state, TrainerControl&, const Metrics& logs) {
  Metrics scalars;
  for (const auto& [name, value] : logs) scalars[Tag(name)] = value;
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  absl::Status s = writer_->AddScalars(state.global_step, now, scalars);
  if (!s.ok() && !failed_) {
    failed_ = true;
    spdlog::error("TensorBoard: {}; no more scalars go to {}", std::string(s.message()), writer_->path());
  }
}

std::string TensorBoardDir(const TrainingArguments& args, bool resuming) {
  const fs::path output_dir = args.output_dir();
  if (!args.logging_dir().empty()) {
    const fs::path dir = args.logging_dir();
    return (dir.is_absolute() ? dir : output_dir / dir).string();
  }
  const fs::path runs = output_dir / "runs";
  std::error_code ec;
  if (resuming) {
    fs::path newest;
    fs::file_time_type newest_time;
    for (const auto& entry : fs::directory_iterator(runs, ec)) {
      if (!entry.is_directory(ec)) continue;
      const fs::file_time_type t = entry.last_write_time(ec);
      if (!ec && (newest.empty() || t > newest_time)) {
        newest = entry.path();
        newest_time = t;
      }
    }
    if (!newest.empty()) return newest.string();
  }
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  ::localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%b%d_%H-%M-%S", &local);  // HF's default name
  return (runs / absl::StrCat(stamp, "_", host)).string();
}

}  // namespace trainerd
