#include "server/api/job_operations.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <optional>

#include "server/jobs/job_state.h"
#include "server/jobs/metric_history.h"

namespace trainerd {
namespace {

using namespace trainer::v1;

// The same bytes for equal messages (map entries in a fixed order).
std::string DeterministicBytes(const google::protobuf::Message& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream out(&stream);
    out.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&out);
  }
  return bytes;
}

// A store's answer shaped into a response: make(value) for an OK result, else its error.
template <typename T, typename Make>
auto Shape(absl::StatusOr<T> result, Make make) -> absl::StatusOr<decltype(make(std::move(*result)))> {
  if (!result.ok()) return result.status();
  return make(std::move(*result));
}

// Metric points one fetch of a watch reads at most.
constexpr int64_t kMetricsPerFetch = 5000;

}  // namespace

void JobOperations::ShowQueueSpot(Job* job) const {
  if (job->state() != QUEUED && job->state() != RESTARTING) return;
  if (std::optional<QueueSpot> spot = supervisor_->QueueSpotOf(job->id())) {
    job->set_queue_position(spot->position);
    job->set_queue_reason(spot->reason);
  }
}

absl::StatusOr<Job> JobOperations::JobFor(const Caller& caller, const std::string& id, Access access) const {
  absl::StatusOr<Job> job = registry_->Get(id);
  if (!job.ok()) return job.status();
  absl::Status allowed =
      access == Access::kRead ? access_->CheckRead(caller, *job) : access_->CheckChange(caller, *job);
  if (!allowed.ok()) return allowed;
  return job;
}

absl::StatusOr<SubmitJobResponse> JobOperations::SubmitJob(const CallOrigin& origin,
                                                           const SubmitJobRequest& request) const {
  std::string job_id;  // the audit names the job it made
  return Run("SubmitJob", /*audited=*/true, origin, job_id, [&](const Caller& caller) {
    absl::StatusOr<SubmitJobResponse> submitted =
        supervisor_->Submit(request, Submitter{caller.user, caller.user_id, caller.admin});
    if (submitted.ok()) job_id = submitted->job_id();
    return submitted;
  });
}

absl::StatusOr<Job> JobOperations::GetJob(const CallOrigin& origin, const GetJobRequest& request) const {
  return Run("GetJob", false, origin, request.job_id(), [&](const Caller& caller) {
    absl::StatusOr<Job> job = JobFor(caller, request.job_id(), Access::kRead);
    if (job.ok()) ShowQueueSpot(&*job);
    return job;
  });
}

absl::StatusOr<ListJobsResponse> JobOperations::ListJobs(const CallOrigin& origin,
                                                         const ListJobsRequest& request) const {
  return Run("ListJobs", false, origin, "", [&](const Caller& caller) {
    absl::StatusOr<ListJobsResponse> list = registry_->List(request, access_->ListOwner(caller, request.mine()));
    if (list.ok()) {
      for (Job& job : *list->mutable_jobs()) ShowQueueSpot(&job);
    }
    return list;
  });
}

absl::StatusOr<Job> JobOperations::CancelJob(const CallOrigin& origin, const CancelJobRequest& request) const {
  return Run("CancelJob", true, origin, request.job_id(), [&](const Caller& caller) -> absl::StatusOr<Job> {
    if (auto job = JobFor(caller, request.job_id(), Access::kChange); !job.ok()) return job.status();
    return supervisor_->Cancel(request.job_id());
  });
}

absl::StatusOr<Job> JobOperations::ResumeJob(const CallOrigin& origin, const ResumeJobRequest& request) const {
  return Run("ResumeJob", true, origin, request.job_id(), [&](const Caller& caller) -> absl::StatusOr<Job> {
    if (auto job = JobFor(caller, request.job_id(), Access::kChange); !job.ok()) return job.status();
    return supervisor_->Resume(request.job_id(), request.checkpoint_step(), request.stop_at_step());
  });
}

absl::Status JobOperations::DeleteJob(const CallOrigin& origin, const DeleteJobRequest& request) const {
  return Run("DeleteJob", true, origin, request.job_id(), [&](const Caller& caller) {
    auto job = JobFor(caller, request.job_id(), Access::kChange);
    if (absl::IsNotFound(job.status()) && request.delete_files()) {
      // Deleted before without its files: the folder is its owner's to delete still.
      return supervisor_->DeleteKeptFolder(request.job_id(),
                                           [&](const Job& kept) { return access_->CheckChange(caller, kept); });
    }
    if (!job.ok()) return job.status();
    return supervisor_->Delete(request.job_id(), request.delete_files());
  });
}

absl::StatusOr<ListCheckpointsResponse> JobOperations::ListCheckpoints(const CallOrigin& origin,
                                                                       const ListCheckpointsRequest& request) const {
  return Run("ListCheckpoints", false, origin, request.job_id(),
             [&](const Caller& caller) -> absl::StatusOr<ListCheckpointsResponse> {
               if (auto job = JobFor(caller, request.job_id(), Access::kRead); !job.ok()) return job.status();
               return Shape(registry_->Checkpoints(request.job_id()), [](std::vector<Checkpoint> list) {
                 ListCheckpointsResponse response;
                 for (auto& c : list) *response.add_checkpoints() = std::move(c);
                 return response;
               });
             });
}

absl::StatusOr<GetMetricsResponse> JobOperations::GetMetrics(const CallOrigin& origin,
                                                             const GetMetricsRequest& request) const {
  return Run("GetMetrics", false, origin, request.job_id(),
             [&](const Caller& caller) -> absl::StatusOr<GetMetricsResponse> {
               auto job = JobFor(caller, request.job_id(), Access::kRead);
               if (!job.ok()) return job.status();
               // The count of every stored point is the offset a watch follows from; with
               // a name or split asked for it is counted apart.
               int64_t stored = -1;
               if (!request.name().empty() || !request.split().empty()) {
                 absl::StatusOr<int64_t> all = output_->CountMetrics(request.job_id());
                 if (!all.ok()) return all.status();
                 stored = *all;
               }
               return Shape(output_->ReadMetrics(request.job_id(), request.name(), request.split()),
                            [&job, stored](std::vector<MetricPoint> points) {
                              GetMetricsResponse response;
                              response.set_stored_points(stored >= 0 ? stored : static_cast<int64_t>(points.size()));
                              for (auto& p : CurrentHistory(std::move(points), job->attempts())) {
                                *response.add_points() = std::move(p);
                              }
                              return response;
                            });
             });
}

absl::StatusOr<ListAuditEventsResponse> JobOperations::ListAuditEvents(const CallOrigin& origin,
                                                                       const ListAuditEventsRequest& request) const {
  return Run("ListAuditEvents", false, origin, "",
             [&](const Caller& caller) -> absl::StatusOr<ListAuditEventsResponse> {
               if (absl::Status s = access_->CheckAdmin(caller); !s.ok()) return s;
               if (request.limit() < 0 || request.before_seq() < 0) {
                 return absl::InvalidArgumentError("limit and before_seq: must be >= 0");
               }
               const int limit = request.limit() == 0 ? 100 : std::min(request.limit(), 10000);
               return Shape(audit_->List(limit, request.before_seq()), [](std::vector<AuditEvent> events) {
                 ListAuditEventsResponse response;
                 for (auto& e : events) *response.add_events() = std::move(e);
                 return response;
               });
             });
}

absl::StatusOr<WhoAmIResponse> JobOperations::WhoAmI(const CallOrigin& origin) const {
  return Run("WhoAmI", false, origin, "", [&](const Caller& caller) -> absl::StatusOr<WhoAmIResponse> {
    WhoAmIResponse response;
    response.set_user(caller.user);
    response.set_admin(caller.admin);
    return response;
  });
}

absl::Status JobOperations::RefuseUnreadable(const CallOrigin& origin, const char* method,
                                             absl::Status unreadable) const {
  return Run(method, false, origin, "", [&](const Caller&) { return unreadable; });
}

absl::StatusOr<FollowFetch<LogLine>> JobOperations::StreamLogs(const CallOrigin& origin,
                                                               const StreamLogsRequest& request) const {
  return Run("StreamLogs", false, origin, request.job_id(),
             [&](const Caller& caller) -> absl::StatusOr<FollowFetch<LogLine>> {
               if (auto job = JobFor(caller, request.job_id(), Access::kRead); !job.ok()) return job.status();
               std::optional<int32_t> rank;
               if (request.has_rank()) rank = request.rank();
               int64_t next = std::max<int64_t>(1, request.from_seq());
               if (request.tail() > 0) {
                 auto first = output_->SeqOfLastLogs(request.job_id(), request.tail(), rank, request.min_level());
                 if (!first.ok()) return first.status();
                 next = std::max(next, *first);
               }
               // Each fetch reads what is new since the last line sent. The job's state is
               // read first: a finished job's lines are all stored by then, so an empty read
               // ends it.
               return FollowFetch<LogLine>([this, id = request.job_id(), rank, level = request.min_level(),
                                            follow = request.follow(),
                                            next](std::deque<LogLine>* out, bool* done) mutable -> absl::Status {
                 auto job = registry_->Get(id);
                 if (!job.ok()) return job.status();
                 const bool finished = IsTerminal(job->state());
                 auto lines = output_->ReadLogs(id, next, 500, rank, level);
                 if (!lines.ok()) return lines.status();
                 for (LogLine& l : *lines) {
                   next = l.seq() + 1;
                   out->push_back(std::move(l));
                 }
                 *done = lines->empty() && (!follow || finished);
                 return absl::OkStatus();
               });
             });
}

absl::StatusOr<FollowFetch<JobEvent>> JobOperations::WatchJob(const CallOrigin& origin,
                                                              const WatchJobRequest& request) const {
  return Run("WatchJob", false, origin, request.job_id(),
             [&](const Caller& caller) -> absl::StatusOr<FollowFetch<JobEvent>> {
               if (auto job = JobFor(caller, request.job_id(), Access::kRead); !job.ok()) return job.status();
               // What the watcher has last been sent: two changes within one millisecond
               // (the last progress and the final state) share updated_unix_ms, so the
               // content decides.
               // `after_row`: the store's cursor past the points sent (-1 until the
               // first read finds where metrics_offset ends).
               return FollowFetch<JobEvent>([this, id = request.job_id(), last_sent = std::string(),
                                             skip = std::max<int64_t>(0, request.metrics_offset()),
                                             after_row = int64_t{-1}](std::deque<JobEvent>* out,
                                                                      bool* done) mutable -> absl::Status {
                 auto job = registry_->Get(id);
                 if (!job.ok()) return job.status();
                 auto points = output_->ReadMetricsAfter(id, skip, &after_row, kMetricsPerFetch);
                 if (points.ok()) {
                   for (MetricPoint& point : *points) *out->emplace_back().mutable_metric() = std::move(point);
                 }
                 // More than one read holds: the job's state waits until they are sent.
                 if (points.ok() && static_cast<int64_t>(points->size()) == kMetricsPerFetch) return absl::OkStatus();
                 ShowQueueSpot(&*job);
                 if (std::string now = DeterministicBytes(*job); now != last_sent) {
                   last_sent = std::move(now);
                   *out->emplace_back().mutable_job() = *job;
                 }
                 *done = IsTerminal(job->state());
                 return absl::OkStatus();
               });
             });
}

}  // namespace trainerd
