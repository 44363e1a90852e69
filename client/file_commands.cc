// trainer-cli's commands for the caller's storage area on trainerd: upload, download,
// files (FileTransfer does the transfers).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli_commands.h"
#include "client/cli_format.h"
#include "client/file_transfer.h"

namespace trainerd {
namespace {

// A progress line on stderr ("  41%  112.0 of 272.4 MB"), at most twice a second, when
// stderr is a terminal and the caller did not ask for quiet.
FileTransfer::Progress ProgressLine(bool quiet) {
  if (quiet || !::isatty(STDERR_FILENO)) return nullptr;
  auto last = std::make_shared<std::chrono::steady_clock::time_point>();
  return [last](int64_t done, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (now - *last < std::chrono::milliseconds(500) && done < total) return true;
    *last = now;
    std::fprintf(stderr, "\r  %3d%%  %.1f of %.1f MB%s", total > 0 ? static_cast<int>(100 * done / total) : 100,
                 static_cast<double>(done) / 1e6, static_cast<double>(total) / 1e6, done >= total ? "\n" : "");
    return true;
  };
}

std::string Megabytes(int64_t bytes) { return absl::StrFormat("%.1f MB", static_cast<double>(bytes) / 1e6); }

}  // namespace

int RunUpload(TrainerClient& client, const CliArgs& args) {
  std::string name = args.file_name;
  if (name.empty()) {  // the file's or folder's own name
    std::string local = args.local_path;
    while (local.size() > 1 && local.back() == '/') local.pop_back();
    name = local.substr(local.find_last_of('/') + 1);
  }
  FileTransfer transfer(&client);
  auto files = transfer.Upload(args.local_path, name, ProgressLine(args.quiet));
  if (!files.ok()) return Report(files.status());
  if (args.json) {
    trainer::v1::ListFilesResponse resp;
    for (const auto& f : *files) *resp.add_files() = f;
    std::cout << ToJson(resp) << "\n";
    return kOk;
  }
  int64_t bytes = 0;
  for (const auto& f : *files) bytes += f.size();
  // A folder's files are user://USER/NAME/<relative>: the spec names the folder.
  const std::string& first = files->front().path();
  const std::string path = files->size() == 1 ? first : first.substr(0, first.size() - files->front().name().size()) + name;
  std::cout << "uploaded " << files->size() << " file(s), " << Megabytes(bytes) << "; a job spec names it\n  " << path
            << "\n";
  return kOk;
}

// Whether `name` is a job the caller may read (then download and files are about its
// output_dir) rather than a file of their area.
bool IsJob(TrainerClient& client, const std::string& name) { return client.GetJob(name).ok(); }

// The folder of `job`'s output_dir that download fetches: a checkpoint (--checkpoint
// STEP, --best), else "" (the final folder).
absl::StatusOr<std::string> JobFolderName(TrainerClient& client, const std::string& job, const CliArgs& args) {
  if (args.checkpoint > 0) return absl::StrCat("checkpoint-", args.checkpoint);
  if (!args.best) return std::string();
  auto checkpoints = client.ListCheckpoints(job);
  if (!checkpoints.ok()) return checkpoints.status();
  for (const auto& c : *checkpoints) {
    if (c.is_best()) return absl::StrCat("checkpoint-", c.step());
  }
  return absl::NotFoundError(absl::StrCat("job ", job, " has no best checkpoint (it sets no metric_for_best_model, "
                                          "or none was saved)"));
}

int RunDownload(TrainerClient& client, const CliArgs& args) {
  FileTransfer transfer(&client);
  const bool job = IsJob(client, args.file_name);
  if (!job && (args.checkpoint > 0 || args.best)) {
    return Report(absl::NotFoundError(absl::StrCat(args.file_name, ": no such job")));
  }
  std::string name = args.file_name, job_id;
  if (job) {
    job_id = args.file_name;
    auto folder = JobFolderName(client, job_id, args);
    if (!folder.ok()) return Report(folder.status());
    name = *folder;
  }
  const std::string dest = args.dest.empty() ? (job ? job_id + (name.empty() ? "" : "-" + name) : ".") : args.dest;
  if (absl::Status s = transfer.Download(name, dest, ProgressLine(args.quiet), job_id); !s.ok()) return Report(s);
  std::cout << "downloaded " << (job ? "job " + job_id + (name.empty() ? "'s final folder" : " " + name) : name)
            << " to " << dest << "\n";
  return kOk;
}

int RunFiles(TrainerClient& client, const CliArgs& args) {
  FileTransfer transfer(&client);
  if (args.delete_file) {
    if (args.file_name.empty()) return Report(absl::InvalidArgumentError("files --delete: name the file or folder"));
    if (absl::Status s = transfer.Delete(args.file_name); !s.ok()) return Report(s);
    std::cout << "deleted " << args.file_name << "\n";
    return kOk;
  }
  const bool job = !args.file_name.empty() && args.user.empty() && IsJob(client, args.file_name);
  auto listed = job ? transfer.List("", "", args.file_name) : transfer.List(args.file_name, args.user);
  if (!listed.ok()) return Report(listed.status());
  if (args.json) {
    std::cout << ToJson(*listed) << "\n";
    return kOk;
  }
  // A job's files have no user:// path: they are read by downloading them.
  std::vector<std::vector<std::string>> rows = {job ? std::vector<std::string>{"SIZE", "NAME"}
                                                    : std::vector<std::string>{"SIZE", "NAME", "PATH"}};
  for (const auto& f : listed->files()) {
    rows.push_back(job ? std::vector<std::string>{Megabytes(f.size()), f.name()}
                       : std::vector<std::string>{Megabytes(f.size()), f.name(), f.path()});
  }
  std::cout << Table(rows);
  if (!job) std::cout << "used " << Megabytes(listed->used_bytes()) << " of " << Megabytes(listed->quota_bytes()) << "\n";
  return kOk;
}

}  // namespace trainerd
