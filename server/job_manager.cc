#include "server/job_manager.h"

#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <random>

#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/atomic_file.h"
#include "proto/spec/spec_defaults.h"
#include "proto/spec/spec_loader.h"
#include "proto/spec/spec_validator.h"
#include "protocol/job_layout.h"
#include "server/job_state.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using trainer::v1::Job;

std::string NewJobId() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  static const char kHex[] = "0123456789abcdef";
  std::string id = "j";
  uint64_t v = rng();
  for (int i = 0; i < 11; ++i, v >>= 4) id += kHex[v & 15];
  return id;
}

// A custom worker program must resolve (symlinks followed) into an allowed folder.
// Returns its resolved path and "device:inode"; a program outside the folders gets the
// same answer whether or not it exists.
absl::StatusOr<std::pair<std::string, std::string>> ResolveWorkerProgram(const std::string& program,
                                                                         const std::vector<std::string>& allowed) {
  std::error_code ec;
  const fs::path real = fs::weakly_canonical(program, ec);
  for (const std::string& dir : allowed) {
    if (ec) break;
    std::error_code root_ec;
    const fs::path root = fs::canonical(dir, root_ec);
    if (root_ec) continue;
    if (!IsWithin(real, root)) continue;
    struct stat st {};
    if (::stat(real.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError("worker_program: is not a program file");
    }
    return std::make_pair(real.string(), absl::StrCat(st.st_dev, ":", st.st_ino));
  }
  return absl::PermissionDeniedError(
      "worker_program: is not in a folder the operator allows (trainerd --allow-worker-dir)");
}

}  // namespace

absl::Status JobManager::CheckWorkerProgram(const Job& job) const {
  if (job.worker_program().empty()) return absl::OkStatus();
  auto resolved = ResolveWorkerProgram(job.worker_program(), options_.allowed_worker_dirs);
  if (!resolved.ok()) return resolved.status();
  // Jobs stored before trainerd recorded the file have no id: only the folder is checked.
  if (job.worker_program_id().empty()) return absl::OkStatus();
  if (resolved->first != job.worker_program() || resolved->second != job.worker_program_id()) {
    return absl::FailedPreconditionError(
        "worker_program: the file was replaced after submission; trainerd runs only the file it checked");
  }
  return absl::OkStatus();
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

JobManager::JobManager(JobManagerOptions options, JobStore* store, JobManagerHooks hooks)
    : options_(std::move(options)), store_(store), hooks_(std::move(hooks)) {}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(JobManagerOptions options, JobStore* store,
                                                               JobManagerHooks hooks) {
  std::error_code ec;
  fs::create_directories(fs::path(options.data_root) / "jobs", ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("--data-root ", options.data_root, ": ", ec.message()));
  std::unique_ptr<JobManager> m(new JobManager(std::move(options), store, std::move(hooks)));
  if (absl::Status s = m->Recover(); !s.ok()) return s;
  return m;
}

void JobManager::Start(const std::string& worker_address) {
  worker_address_ = worker_address;
  supervisor_ = std::thread([this] { SupervisorLoop(); });
}

JobManager::~JobManager() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_supervisor_ = true;
  }
  changed_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
}

std::string JobManager::JobDir(const std::string& id) const {
  return trainerd::JobDir(options_.data_root, id);
}

absl::Status JobManager::StoreJob(const Job& job, bool finishing) {
  Job stored = job;
  stored.clear_store_error();
  absl::Status s = store_->PutJob(stored);
  {
    std::unique_lock<std::shared_mutex> lock(cache_mu_);
    Job& cached = cache_[job.id()];
    cached = stored;
    if (!s.ok()) cached.set_store_error(std::string(s.message()));
  }
  ++change_counter_;
  changed_.notify_all();
  auto unsaved = unsaved_.find(job.id());
  if (!s.ok()) {
    if (unsaved == unsaved_.end()) {
      spdlog::error("job={} cannot be saved (retrying every poll): {}", job.id(), std::string(s.message()));
      unsaved_[job.id()] = finishing;
    } else {
      unsaved->second = unsaved->second || finishing;
    }
    return s;
  }
  if (unsaved != unsaved_.end()) {
    spdlog::info("job={} saved after failed writes", job.id());
    finishing = finishing || unsaved->second;
    unsaved_.erase(unsaved);
  }
  if (hooks_.on_job_changed) hooks_.on_job_changed(stored);
  if (finishing && hooks_.on_job_finished) hooks_.on_job_finished(stored);
  return s;
}

void JobManager::PutJob(Job& job, bool finishing) {
  job.set_updated_unix_ms(NowMs());
  absl::Status s = StoreJob(job, finishing);
  job.set_store_error(s.ok() ? "" : std::string(s.message()));
}

void JobManager::NoteUnsaved(const std::string& job_id, const absl::Status& error) {
  std::unique_lock<std::shared_mutex> lock(cache_mu_);
  auto it = cache_.find(job_id);
  if (it == cache_.end()) return;
  it->second.set_store_error(std::string(error.message()));
  ++change_counter_;
}

void JobManager::FlushUnsaved() {
  std::vector<std::string> ids;
  for (const auto& [id, finishing] : unsaved_) ids.push_back(id);
  for (const std::string& id : ids) {
    absl::StatusOr<Job> job = Get(id);
    if (!job.ok()) {
      unsaved_.erase(id);  // deleted meanwhile
      continue;
    }
    if (!StoreJob(*job, /*finishing=*/false).ok()) return;  // the others would fail the same way
  }
}

absl::Status JobManager::Transition(Job& job, trainer::v1::JobState to) {
  if (!CanTransition(job.state(), to)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job.id(), " is ", StateName(job.state()), "; it cannot become ", StateName(to)));
  }
  spdlog::info("job={} state {} -> {}", job.id(), StateName(job.state()), StateName(to));
  job.set_state(to);
  PutJob(job, IsTerminal(to));
  return absl::OkStatus();
}

void JobManager::MoveTo(Job& job, trainer::v1::JobState to) {
  if (absl::Status s = Transition(job, to); !s.ok()) spdlog::error("bug: {}", std::string(s.message()));
}

absl::StatusOr<Job> JobManager::Submit(const trainer::v1::SubmitJobRequest& request, const std::string& owner) {
  if (shutting_down()) return absl::UnavailableError("trainerd is shutting down; not accepting jobs");
  if (request.name().size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("name: is ", request.name().size(), " bytes long; at most ", kMaxNameBytes, " are accepted"));
  }
  for (unsigned char ch : request.name()) {
    if (ch < 0x20 || ch == 0x7f) return absl::InvalidArgumentError("name: must not hold control characters");
  }
  if (request.worker_program().size() > kMaxSpecStringBytes) {
    return absl::InvalidArgumentError(absl::StrCat("worker_program: is longer than ", kMaxSpecStringBytes, " bytes"));
  }
  const std::string id = NewJobId();
  const std::string dir = JobDir(id);
  trainer::v1::JobSpec spec = request.spec();
  // trainerd owns where a job writes: its output goes under the job's folder. Set before
  // validation, so that paths into the job's own output_dir are allowed.
  spec.mutable_training_args()->set_output_dir((fs::path(dir) / kOutputDirName).string());
  // Exports in the shared registry are named after the job unless the spec names them.
  if (!spec.training_args().has_hub_model_id()) spec.mutable_training_args()->set_hub_model_id(id);
  ApplyDefaults(&spec);
  SpecCheckOptions check;
  check.policy = options_.spec_policy;
  std::vector<std::string> problems = FindSpecProblems(spec, check);
  const auto& r = request.resources();
  if (r.ranks() < 0) problems.push_back("resources.ranks: must be >= 1");
  if (r.ranks() > 1 && spec.training_args().optim() == "galore_adamw_layerwise") {
    problems.push_back("resources.ranks: galore_adamw_layerwise steps each weight during backward, before gradients "
                       "could be averaged across ranks; use 1 rank");
  }
  const NodeSlots capacity = Capacity();
  if (r.ranks() > capacity.cpu_slots) {
    problems.push_back(absl::StrCat("resources.ranks: ", r.ranks(), " ranks need as many CPU slots; this trainerd has ",
                                    capacity.cpu_slots, " (--cpu-slots, plus its agents')"));
  }
  if (r.gpus_per_rank() < 0) problems.push_back("resources.gpus_per_rank: must be >= 0");
  if (r.gpus_per_rank() > capacity.gpus) {
    problems.push_back(absl::StrCat("resources.gpus_per_rank: no machine of this trainerd has more than ",
                                    capacity.gpus, " GPUs"));
  }
  if (request.has_max_restarts() && request.max_restarts() < 0) problems.push_back("max_restarts: must be >= 0");
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  std::pair<std::string, std::string> program;
  if (!request.worker_program().empty()) {
    auto resolved = ResolveWorkerProgram(request.worker_program(), options_.allowed_worker_dirs);
    if (!resolved.ok()) return resolved.status();
    program = *resolved;
  }

  Job job;
  job.set_id(id);
  job.set_name(request.name().empty() ? job.id() : request.name());
  job.set_owner(owner);
  job.set_priority(request.priority());
  job.mutable_resources()->set_ranks(std::max(1, r.ranks()));
  job.mutable_resources()->set_gpus_per_rank(r.gpus_per_rank());
  job.set_max_restarts(request.has_max_restarts() ? request.max_restarts() : options_.default_max_restarts);
  // The resolved file is what runs, and only while it is still that file (see
  // CheckWorkerProgram): retargeting a symlink after submission changes nothing.
  job.set_worker_program(program.first);
  job.set_worker_program_id(program.second);
  job.set_created_unix_ms(NowMs());
  job.set_output_dir(spec.training_args().output_dir());
  spec.mutable_training_args()->set_run_name(job.name());
  *job.mutable_spec() = spec;
  job.set_state(trainer::v1::QUEUED);
  std::error_code ec;
  fs::create_directories(job.output_dir(), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", job.output_dir(), ": ", ec.message()));
  if (absl::Status s = WriteFileAtomically(dir + "/" + kSpecFile, JobSpecToJson(spec)); !s.ok()) return s;

  std::lock_guard<std::mutex> lock(mu_);
  if (shutting_down_) return absl::UnavailableError("trainerd is shutting down; not accepting jobs");
  // A job that cannot be stored is not accepted: nothing of it stays behind.
  if (absl::Status s = StoreJob(job, /*finishing=*/false); !s.ok()) {
    unsaved_.erase(job.id());
    std::unique_lock<std::shared_mutex> cache_lock(cache_mu_);
    cache_.erase(job.id());
    return s;
  }
  schedule_needed_ = true;
  spdlog::info("job={} submitted by {} name={} priority={}", job.id(), owner, job.name(), job.priority());
  return job;
}

absl::StatusOr<Job> JobManager::Get(const std::string& id) {
  {
    std::shared_lock<std::shared_mutex> lock(cache_mu_);
    auto it = cache_.find(id);
    if (it != cache_.end()) return it->second;
  }
  absl::StatusOr<Job> job = store_->GetJob(id);
  if (job.ok()) {
    std::unique_lock<std::shared_mutex> lock(cache_mu_);
    cache_.emplace(id, *job);
  }
  return job;
}

absl::StatusOr<trainer::v1::ListJobsResponse> JobManager::List(const trainer::v1::ListJobsRequest& request,
                                                               const std::string& owner) {
  const int limit = request.page_size() <= 0 ? 50 : std::min(request.page_size(), 1000);
  int64_t before_ms = 0;
  std::string before_id;
  if (!request.page_token().empty()) {
    const std::string& token = request.page_token();
    const size_t colon = token.find(':');
    if (colon == std::string::npos || token.size() > 128 || !absl::SimpleAtoi(token.substr(0, colon), &before_ms) ||
        before_ms <= 0) {
      return absl::InvalidArgumentError("page_token: not a token ListJobs returned");
    }
    before_id = token.substr(colon + 1);
  }
  std::vector<trainer::v1::JobState> states;
  for (int s : request.states()) states.push_back(static_cast<trainer::v1::JobState>(s));
  auto jobs = store_->ListJobs(states, owner, limit + 1, before_ms, before_id);
  if (!jobs.ok()) return jobs.status();
  trainer::v1::ListJobsResponse out;
  for (int i = 0; i < std::min<int>(limit, jobs->size()); ++i) *out.add_jobs() = (*jobs)[i];
  if (static_cast<int>(jobs->size()) > limit) {
    const Job& last = out.jobs(out.jobs_size() - 1);
    out.set_next_page_token(absl::StrCat(last.created_unix_ms(), ":", last.id()));
  }
  return out;
}

absl::StatusOr<Job> JobManager::Cancel(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto job = Get(id);
  if (!job.ok()) return job.status();
  if (IsTerminal(job->state())) return *job;
  if (job->state() == trainer::v1::CANCELLING) return *job;
  auto it = running_.find(id);
  if (it == running_.end()) {
    if (absl::Status s = Transition(*job, trainer::v1::CANCELLED); !s.ok()) return s;
    return *job;
  }
  it->second.stop_reason = "cancelled";
  it->second.term_sent = std::chrono::steady_clock::now();
  SignalRanks(it->second, SIGTERM);
  if (absl::Status s = Transition(*job, trainer::v1::CANCELLING); !s.ok()) return s;
  return *job;
}

absl::StatusOr<Job> JobManager::Resume(const std::string& id, int64_t checkpoint_step) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutting_down_) return absl::UnavailableError("trainerd is shutting down");
  auto job = Get(id);
  if (!job.ok()) return job.status();
  if (!IsTerminal(job->state())) {
    return absl::FailedPreconditionError(absl::StrCat("job ", id, " is ", StateName(job->state()),
                                                      "; only a finished job can be resumed"));
  }
  if (checkpoint_step > 0) {
    const std::string dir = (fs::path(job->output_dir()) / CheckpointDirName(checkpoint_step)).string();
    if (!fs::exists(fs::path(dir) / kManifestFile)) {
      return absl::NotFoundError(absl::StrCat("job ", id, " has no checkpoint at step ", checkpoint_step));
    }
    resume_requests_[id] = dir;
  }
  job->set_restarts(0);
  job->clear_error();
  schedule_needed_ = true;
  if (absl::Status s = Transition(*job, trainer::v1::QUEUED); !s.ok()) return s;
  return *job;
}

absl::Status JobManager::Delete(const std::string& id, bool delete_files) {
  std::lock_guard<std::mutex> lock(mu_);
  auto job = Get(id);
  if (!job.ok()) return job.status();
  if (!IsTerminal(job->state())) {
    return absl::FailedPreconditionError(absl::StrCat("job ", id, " is ", StateName(job->state()),
                                                      "; cancel it first"));
  }
  if (absl::Status s = store_->DeleteJob(id); !s.ok()) return s;
  {
    std::unique_lock<std::shared_mutex> lock(cache_mu_);
    cache_.erase(id);
  }
  if (delete_files) {
    std::error_code ec;
    fs::remove_all(JobDir(id), ec);
  }
  ++change_counter_;
  changed_.notify_all();
  return absl::OkStatus();
}

uint64_t JobManager::WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait_for(lock, timeout, [&] { return change_counter_ != seen || stop_supervisor_; });
  return change_counter_;
}

uint64_t JobManager::change_counter() {
  std::lock_guard<std::mutex> lock(mu_);
  return change_counter_;
}

bool JobManager::shutting_down() {
  std::lock_guard<std::mutex> lock(mu_);
  return shutting_down_;
}

}  // namespace trainerd
