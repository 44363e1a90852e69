#include "server/api/job_service_impl.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "server/api/following_stream.h"
#include "server/jobs/job_state.h"
#include "server/jobs/metric_history.h"
#include "server/api/status_util.h"

namespace trainerd {
namespace {

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

}  // namespace

using namespace trainer::v1;

template <typename Fn>
grpc::Status JobServiceImpl::Observe(const char* method, Kind kind, grpc::ServerContext* context,
                                     const std::string& job_id, Fn&& fn) {
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status =
      RunAuthenticated(*access_, auditor_, method, kind == Kind::kChange, *context, job_id, std::forward<Fn>(fn));
  const grpc::StatusCode code = status.error_code();
  if (observe_) {
    observe_(method, code, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
             kind == Kind::kFollow);
  }
  return status;
}

void JobServiceImpl::ShowQueueSpot(Job* job) const {
  if (job->state() != QUEUED && job->state() != RESTARTING) return;
  if (std::optional<QueueSpot> spot = supervisor_->QueueSpotOf(job->id())) {
    job->set_queue_position(spot->position);
    job->set_queue_reason(spot->reason);
  }
}

absl::StatusOr<Job> JobServiceImpl::JobFor(const Caller& caller, const std::string& id, Kind kind) const {
  absl::StatusOr<Job> job = registry_->Get(id);
  if (!job.ok()) return job.status();
  absl::Status allowed = kind == Kind::kRead ? access_->CheckRead(caller, *job) : access_->CheckChange(caller, *job);
  if (!allowed.ok()) return allowed;
  return job;
}

grpc::Status JobServiceImpl::SubmitJob(grpc::ServerContext* context, const SubmitJobRequest* req,
                                       SubmitJobResponse* resp) {
  return Observe("SubmitJob", Kind::kChange, context, resp->job_id(), [&](const Caller& caller) {
    return Reply(supervisor_->Submit(*req, Submitter{caller.user, caller.user_id, caller.admin}), resp);
  });
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext* context, const GetJobRequest* req, Job* resp) {
  return Observe("GetJob", Kind::kRead, context, req->job_id(), [&](const Caller& caller) {
    absl::StatusOr<Job> job = JobFor(caller, req->job_id(), Kind::kRead);
    if (job.ok()) ShowQueueSpot(&*job);
    return Reply(std::move(job), resp);
  });
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext* context, const ListJobsRequest* req,
                                      ListJobsResponse* resp) {
  return Observe("ListJobs", Kind::kRead, context, "", [&](const Caller& caller) {
    absl::StatusOr<ListJobsResponse> list = registry_->List(*req, access_->ListOwner(caller, req->mine()));
    if (list.ok()) {
      for (Job& job : *list->mutable_jobs()) ShowQueueSpot(&job);
    }
    return Reply(std::move(list), resp);
  });
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext* context, const CancelJobRequest* req, Job* resp) {
  return Observe("CancelJob", Kind::kChange, context, req->job_id(), [&](const Caller& caller) {
    if (auto job = JobFor(caller, req->job_id(), Kind::kChange); !job.ok()) return ToGrpcStatus(job.status());
    return Reply(supervisor_->Cancel(req->job_id()), resp);
  });
}

grpc::Status JobServiceImpl::ResumeJob(grpc::ServerContext* context, const ResumeJobRequest* req, Job* resp) {
  return Observe("ResumeJob", Kind::kChange, context, req->job_id(), [&](const Caller& caller) {
    if (auto job = JobFor(caller, req->job_id(), Kind::kChange); !job.ok()) return ToGrpcStatus(job.status());
    return Reply(supervisor_->Resume(req->job_id(), req->checkpoint_step()), resp);
  });
}

grpc::Status JobServiceImpl::DeleteJob(grpc::ServerContext* context, const DeleteJobRequest* req,
                                       DeleteJobResponse*) {
  return Observe("DeleteJob", Kind::kChange, context, req->job_id(), [&](const Caller& caller) {
    auto job = JobFor(caller, req->job_id(), Kind::kChange);
    if (!job.ok() && job.status().code() == absl::StatusCode::kNotFound && req->delete_files()) {
      // Deleted before without its files: the folder is its owner's to delete still.
      return ToGrpcStatus(supervisor_->DeleteKeptFolder(
          req->job_id(), [&](const Job& kept) { return access_->CheckChange(caller, kept); }));
    }
    if (!job.ok()) return ToGrpcStatus(job.status());
    return ToGrpcStatus(supervisor_->Delete(req->job_id(), req->delete_files()));
  });
}

grpc::Status JobServiceImpl::ListCheckpoints(grpc::ServerContext* context, const ListCheckpointsRequest* req,
                                             ListCheckpointsResponse* resp) {
  return Observe("ListCheckpoints", Kind::kRead, context, req->job_id(), [&](const Caller& caller) {
    if (auto job = JobFor(caller, req->job_id(), Kind::kRead); !job.ok()) return ToGrpcStatus(job.status());
    return Reply(Respond(registry_->Checkpoints(req->job_id()), [](std::vector<Checkpoint> list) {
                   ListCheckpointsResponse r;
                   for (auto& c : list) *r.add_checkpoints() = std::move(c);
                   return r;
                 }),
                 resp);
  });
}

grpc::Status JobServiceImpl::GetMetrics(grpc::ServerContext* context, const GetMetricsRequest* req,
                                        GetMetricsResponse* resp) {
  return Observe("GetMetrics", Kind::kRead, context, req->job_id(), [&](const Caller& caller) {
    auto job = JobFor(caller, req->job_id(), Kind::kRead);
    if (!job.ok()) return ToGrpcStatus(job.status());
    return Reply(Respond(registry_->store()->ReadMetrics(req->job_id(), req->name(), req->split()),
                         [&job](std::vector<MetricPoint> points) {
                           GetMetricsResponse r;
                           for (auto& p : CurrentHistory(std::move(points), job->attempts())) {
                             *r.add_points() = std::move(p);
                           }
                           return r;
                         }),
                 resp);
  });
}

grpc::Status JobServiceImpl::ListAuditEvents(grpc::ServerContext* context, const ListAuditEventsRequest* req,
                                             ListAuditEventsResponse* resp) {
  return Observe("ListAuditEvents", Kind::kRead, context, "", [&](const Caller& caller) {
    if (absl::Status s = access_->CheckAdmin(caller); !s.ok()) return ToGrpcStatus(s);
    if (req->limit() < 0 || req->before_seq() < 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "limit and before_seq: must be >= 0");
    }
    const int limit = req->limit() == 0 ? 100 : std::min(req->limit(), 10000);
    return Reply(Respond(audit_->List(limit, req->before_seq()), [](std::vector<AuditEvent> events) {
                   ListAuditEventsResponse r;
                   for (auto& e : events) *r.add_events() = std::move(e);
                   return r;
                 }),
                 resp);
  });
}

grpc::Status JobServiceImpl::WhoAmI(grpc::ServerContext* context, const WhoAmIRequest*, WhoAmIResponse* resp) {
  return Observe("WhoAmI", Kind::kRead, context, "", [&](const Caller& caller) {
    resp->set_user(caller.user);
    resp->set_admin(caller.admin);
    return grpc::Status::OK;
  });
}

template <typename Item, typename MakeFetch>
grpc::ServerWriteReactor<Item>* JobServiceImpl::Follow(const char* method, grpc::CallbackServerContext* context,
                                                       const std::string& job_id, MakeFetch&& make_fetch) {
  const auto start = std::chrono::steady_clock::now();
  typename FollowingStream<Item>::OnEnd on_end = [this, method, start](const grpc::Status& status) {
    if (observe_) {
      observe_(method, status.error_code(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), /*streamed=*/true);
    }
  };
  absl::StatusOr<Caller> caller = access_->Authenticate(*context);
  const std::string user = caller.ok() ? caller->user : "";
  absl::StatusOr<typename FollowingStream<Item>::Fetch> fetch =
      caller.ok() ? make_fetch(*caller) : absl::StatusOr<typename FollowingStream<Item>::Fetch>(caller.status());
  if (!fetch.ok()) {
    const grpc::Status refused = ToGrpcStatus(fetch.status());
    if (refused.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
        refused.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      auditor_.Record(method, *context, user, job_id, refused);
    }
    return FollowingStream<Item>::Refuse(refused, std::move(on_end));
  }
  return FollowingStream<Item>::Start(&followers_, std::move(*fetch), std::move(on_end));
}

grpc::ServerWriteReactor<LogLine>* JobServiceImpl::StreamLogs(grpc::CallbackServerContext* context,
                                                              const StreamLogsRequest* req) {
  return Follow<LogLine>("StreamLogs", context, req->job_id(), [&](const Caller& caller)
                             -> absl::StatusOr<FollowingStream<LogLine>::Fetch> {
    if (auto job = JobFor(caller, req->job_id(), Kind::kRead); !job.ok()) return job.status();
    std::optional<int32_t> rank;
    if (req->has_rank()) rank = req->rank();
    int64_t next = std::max<int64_t>(1, req->from_seq());
    if (req->tail() > 0) {
      auto first = registry_->store()->SeqOfLastLogs(req->job_id(), req->tail(), rank, req->min_level());
      if (!first.ok()) return first.status();
      next = std::max(next, *first);
    }
    // Each fetch reads what is new since the last line sent. The job's state is read
    // first: a finished job's lines are all stored by then, so an empty read ends it.
    return [this, id = req->job_id(), rank, level = req->min_level(), follow = req->follow(),
            next](std::deque<LogLine>* out, bool* done) mutable -> absl::Status {
      auto job = registry_->Get(id);
      if (!job.ok()) return job.status();
      const bool finished = IsTerminal(job->state());
      auto lines = registry_->store()->ReadLogs(id, next, 500, rank, level);
      if (!lines.ok()) return lines.status();
      for (LogLine& l : *lines) {
        next = l.seq() + 1;
        out->push_back(std::move(l));
      }
      *done = lines->empty() && (!follow || finished);
      return absl::OkStatus();
    };
  });
}

grpc::ServerWriteReactor<JobEvent>* JobServiceImpl::WatchJob(grpc::CallbackServerContext* context,
                                                             const WatchJobRequest* req) {
  return Follow<JobEvent>("WatchJob", context, req->job_id(), [&](const Caller& caller)
                              -> absl::StatusOr<FollowingStream<JobEvent>::Fetch> {
    if (auto job = JobFor(caller, req->job_id(), Kind::kRead); !job.ok()) return job.status();
    // What the watcher has last been sent: two changes within one millisecond (the last
    // progress and the final state) share updated_unix_ms, so the content decides.
    return [this, id = req->job_id(), last_sent = std::string(), metrics_sent = int64_t{0}](
               std::deque<JobEvent>* out, bool* done) mutable -> absl::Status {
      auto job = registry_->Get(id);
      if (!job.ok()) return job.status();
      auto points = registry_->store()->ReadMetrics(id, "", "", metrics_sent);
      if (points.ok()) {
        for (MetricPoint& point : *points) {
          *out->emplace_back().mutable_metric() = std::move(point);
          ++metrics_sent;
        }
      }
      ShowQueueSpot(&*job);
      if (std::string now = DeterministicBytes(*job); now != last_sent) {
        last_sent = std::move(now);
        *out->emplace_back().mutable_job() = *job;
      }
      *done = IsTerminal(job->state());
      return absl::OkStatus();
    };
  });
}

}  // namespace trainerd
