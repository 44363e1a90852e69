#include "server/jobs/job_registry.h"

#include <filesystem>

#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/jobs/job_state.h"

namespace trainerd {

using trainer::v1::Job;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

void JobRegistry::Subscribe(JobSubscriber subscriber) {
  absl::MutexLock lock(&write_mu_);
  subscribers_.push_back(std::move(subscriber));
}

absl::StatusOr<std::vector<Job>> JobRegistry::JobsInStates(const std::vector<trainer::v1::JobState>& states) {
  return store_->JobsInStates(states);
}

absl::StatusOr<Job> JobRegistry::Get(const std::string& id) {
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = cache_.find(id);
    if (it != cache_.end()) return it->second;
  }
  absl::StatusOr<Job> job = store_->GetJob(id);
  if (!job.ok()) return job;
  absl::MutexLock lock(&mu_);
  // Deleted while it was read: a stale copy must not come back (and be saved again).
  if (deleted_.count(id)) return absl::NotFoundError(absl::StrCat("job ", id, " was deleted"));
  return cache_.emplace(id, *job).first->second;  // a change saved meanwhile is newer: emplace keeps it
}

absl::StatusOr<std::vector<trainer::v1::Checkpoint>> JobRegistry::Checkpoints(const std::string& id) {
  absl::StatusOr<Job> job = Get(id);
  if (!job.ok()) return job.status();
  absl::StatusOr<std::vector<trainer::v1::Checkpoint>> stored = store_->ListCheckpoints(id);
  if (!stored.ok()) return stored.status();
  std::vector<trainer::v1::Checkpoint> live;
  for (trainer::v1::Checkpoint& c : *stored) {
    // Only a folder that is certainly gone is forgotten (an unreadable one may be back).
    std::error_code ec;
    if (std::filesystem::status(c.path(), ec).type() == std::filesystem::file_type::not_found) {
      // Forgetting it is tidying: the listing is right without it, so a failure is logged.
      if (absl::Status s = store_->DeleteCheckpoint(id, c.step()); !s.ok()) {
        spdlog::warn("job={} cannot forget deleted checkpoint {}: {}", id, c.path(), std::string(s.message()));
      }
      continue;
    }
    c.set_is_best(!job->best_checkpoint().empty() && c.path() == job->best_checkpoint());
    live.push_back(std::move(c));
  }
  return live;
}

bool JobRegistry::Cached(const std::string& id) {
  absl::ReaderMutexLock lock(&mu_);
  return cache_.count(id) > 0;
}

absl::StatusOr<trainer::v1::ListJobsResponse> JobRegistry::List(const trainer::v1::ListJobsRequest& request,
                                                                int64_t owner_id) {
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
  auto jobs = store_->ListJobs(states, owner_id, limit + 1, before_ms, before_id);
  if (!jobs.ok()) return jobs.status();
  trainer::v1::ListJobsResponse out;
  for (int i = 0; i < std::min<int>(limit, jobs->size()); ++i) *out.add_jobs() = (*jobs)[i];
  if (static_cast<int>(jobs->size()) > limit) {
    const Job& last = out.jobs(out.jobs_size() - 1);
    out.set_next_page_token(absl::StrCat(last.created_unix_ms(), ":", last.id()));
  }
  return out;
}

absl::Status JobRegistry::Save(const Job& job, bool finishing) {
  Job stored = job;
  stored.clear_store_error();
  absl::Status s = store_->PutJob(stored);
  {
    absl::MutexLock lock(&mu_);
    Job& cached = cache_[job.id()];
    cached = stored;
    if (!s.ok()) cached.set_store_error(std::string(s.message()));
    ++change_counter_;
  }
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
  for (const JobSubscriber& subscriber : subscribers_) {
    if (subscriber.on_job_changed) subscriber.on_job_changed(stored);
    if (finishing && subscriber.on_job_finished) subscriber.on_job_finished(stored);
  }
  return s;
}

absl::Status JobRegistry::Add(const Job& job) {
  absl::MutexLock write(&write_mu_);
  absl::Status s = Save(job, /*finishing=*/false);
  if (!s.ok()) {
    unsaved_.erase(job.id());
    absl::MutexLock lock(&mu_);
    cache_.erase(job.id());
  }
  return s;
}

void JobRegistry::PutLocked(Job& job, bool finishing) {
  if (!Cached(job.id())) {
    spdlog::warn("job={} was deleted; a later change to it is dropped", job.id());
    return;
  }
  job.set_updated_unix_ms(NowMs());
  absl::Status s = Save(job, finishing);  // a failure is logged and kept in unsaved_
  job.set_store_error(s.ok() ? "" : std::string(s.message()));
}

void JobRegistry::Put(Job& job, bool finishing) {
  absl::MutexLock write(&write_mu_);
  PutLocked(job, finishing);
}

absl::Status JobRegistry::Transition(Job& job, trainer::v1::JobState to) {
  absl::MutexLock write(&write_mu_);
  if (!CanTransition(job.state(), to)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job.id(), " is ", StateName(job.state()), "; it cannot become ", StateName(to)));
  }
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = cache_.find(job.id());
    if (it == cache_.end()) return absl::NotFoundError(absl::StrCat("job ", job.id(), " was deleted"));
    if (it->second.state() != job.state()) {
      return absl::FailedPreconditionError(absl::StrCat("job ", job.id(), " is ", StateName(it->second.state()),
                                                        " now; it cannot become ", StateName(to)));
    }
  }
  spdlog::info("job={} state {} -> {}", job.id(), StateName(job.state()), StateName(to));
  job.set_state(to);
  // A change the store refuses is still made: PutLocked keeps it and saves it again.
  PutLocked(job, IsTerminal(to));
  return absl::OkStatus();
}

absl::Status JobRegistry::Delete(const std::string& id) {
  absl::MutexLock write(&write_mu_);
  absl::StatusOr<Job> job = Get(id);
  if (!job.ok()) return job.status();
  if (!IsTerminal(job->state())) {
    return absl::FailedPreconditionError(absl::StrCat("job ", id, " is ", StateName(job->state()),
                                                      "; cancel it first"));
  }
  if (absl::Status s = store_->DeleteJob(id); !s.ok()) return s;
  unsaved_.erase(id);
  absl::MutexLock lock(&mu_);
  cache_.erase(id);
  deleted_.insert(id);
  ++change_counter_;
  return absl::OkStatus();
}

void JobRegistry::FlushUnsaved() {
  absl::MutexLock write(&write_mu_);
  std::vector<std::string> ids;
  for (const auto& [id, finishing] : unsaved_) ids.push_back(id);
  for (const std::string& id : ids) {
    absl::StatusOr<Job> job = Get(id);
    if (!job.ok()) {
      unsaved_.erase(id);  // deleted meanwhile
      continue;
    }
    if (!Save(*job, /*finishing=*/false).ok()) return;  // the others would fail the same way
  }
}

void JobRegistry::NoteOutput(const std::string& job_id, const absl::Status& error) {
  absl::MutexLock lock(&mu_);
  ++change_counter_;
  if (error.ok()) return;
  auto it = cache_.find(job_id);
  if (it != cache_.end()) it->second.set_store_error(std::string(error.message()));
}

uint64_t JobRegistry::WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) {
  absl::MutexLock lock(&mu_);
  auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return change_counter_ != seen || stop_waiting_; };
  mu_.AwaitWithTimeout(absl::Condition(&changed), absl::FromChrono(timeout));
  return change_counter_;
}

uint64_t JobRegistry::change_counter() {
  absl::ReaderMutexLock lock(&mu_);
  return change_counter_;
}

void JobRegistry::StopWaiting() {
  absl::MutexLock lock(&mu_);
  stop_waiting_ = true;
}

}  // namespace trainerd
