#include "server/job_service_impl.h"

#include <chrono>

#include "server/job_state.h"
#include "server/status_util.h"

namespace trainerd {

using namespace trainer::v1;

template <typename Fn>
grpc::Status JobServiceImpl::Observe(const std::string& method, Fn&& fn) {
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status = fn();
  if (observe_) {
    observe_(method, status.error_code(),
             std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return status;
}

grpc::Status JobServiceImpl::SubmitJob(grpc::ServerContext*, const SubmitJobRequest* req, SubmitJobResponse* resp) {
  return Observe("SubmitJob", [&] {
    auto job = manager_->Submit(*req);
    if (!job.ok()) return ToGrpcStatus(job.status());
    resp->set_job_id(job->id());
    *resp->mutable_job() = *job;
    return grpc::Status::OK;
  });
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext*, const GetJobRequest* req, Job* resp) {
  return Observe("GetJob", [&] {
    auto job = manager_->Get(req->job_id());
    if (!job.ok()) return ToGrpcStatus(job.status());
    *resp = *job;
    return grpc::Status::OK;
  });
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext*, const ListJobsRequest* req, ListJobsResponse* resp) {
  return Observe("ListJobs", [&] {
    auto out = manager_->List(*req);
    if (!out.ok()) return ToGrpcStatus(out.status());
    *resp = *out;
    return grpc::Status::OK;
  });
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext*, const CancelJobRequest* req, Job* resp) {
  return Observe("CancelJob", [&] {
    auto job = manager_->Cancel(req->job_id());
    if (!job.ok()) return ToGrpcStatus(job.status());
    *resp = *job;
    return grpc::Status::OK;
  });
}

grpc::Status JobServiceImpl::ResumeJob(grpc::ServerContext*, const ResumeJobRequest* req, Job* resp) {
  return Observe("ResumeJob", [&] {
    auto job = manager_->Resume(req->job_id(), req->checkpoint_step());
    if (!job.ok()) return ToGrpcStatus(job.status());
    *resp = *job;
    return grpc::Status::OK;
  });
}

grpc::Status JobServiceImpl::DeleteJob(grpc::ServerContext*, const DeleteJobRequest* req, DeleteJobResponse*) {
  return Observe("DeleteJob", [&] { return ToGrpcStatus(manager_->Delete(req->job_id(), req->delete_files())); });
}

grpc::Status JobServiceImpl::ListCheckpoints(grpc::ServerContext*, const ListCheckpointsRequest* req,
                                             ListCheckpointsResponse* resp) {
  return Observe("ListCheckpoints", [&] {
    if (auto job = manager_->Get(req->job_id()); !job.ok()) return ToGrpcStatus(job.status());
    auto list = manager_->store()->ListCheckpoints(req->job_id());
    if (!list.ok()) return ToGrpcStatus(list.status());
    for (auto& c : *list) *resp->add_checkpoints() = std::move(c);
    return grpc::Status::OK;
  });
}

grpc::Status JobServiceImpl::GetMetrics(grpc::ServerContext*, const GetMetricsRequest* req, GetMetricsResponse* resp) {
  return Observe("GetMetrics", [&] {
    if (auto job = manager_->Get(req->job_id()); !job.ok()) return ToGrpcStatus(job.status());
    auto points = manager_->store()->ReadMetrics(req->job_id(), req->name(), req->split());
    if (!points.ok()) return ToGrpcStatus(points.status());
    for (auto& p : *points) *resp->add_points() = std::move(p);
    return grpc::Status::OK;
  });
}

grpc::Status JobServiceImpl::StreamLogs(grpc::ServerContext* context, const StreamLogsRequest* req,
                                        grpc::ServerWriter<LogLine>* writer) {
  return Observe("StreamLogs", [&] {
    std::optional<int32_t> rank;
    if (req->has_rank()) rank = req->rank();
    int64_t next = std::max<int64_t>(1, req->from_seq());
    uint64_t seen = manager_->change_counter();
    while (!context->IsCancelled()) {
      auto job = manager_->Get(req->job_id());
      if (!job.ok()) return ToGrpcStatus(job.status());
      const bool finished = IsTerminal(job->state());
      // Read everything available (the job may have ended meanwhile: drain first).
      while (true) {
        auto lines = manager_->store()->ReadLogs(req->job_id(), next, 500, rank, req->min_level());
        if (!lines.ok()) return ToGrpcStatus(lines.status());
        if (lines->empty()) break;
        for (const LogLine& l : *lines) {
          if (!writer->Write(l)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
          next = l.seq() + 1;
        }
      }
      if (!req->follow() || finished) break;
      seen = manager_->WaitForChange(seen, std::chrono::milliseconds(500));
    }
    return grpc::Status::OK;
  });
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* context, const WatchJobRequest* req,
                                      grpc::ServerWriter<JobEvent>* writer) {
  return Observe("WatchJob", [&] {
    int64_t last_update = -1;
    size_t metrics_sent = 0;
    uint64_t seen = manager_->change_counter();
    while (!context->IsCancelled()) {
      auto job = manager_->Get(req->job_id());
      if (!job.ok()) return ToGrpcStatus(job.status());
      auto points = manager_->store()->ReadMetrics(req->job_id(), "", "", static_cast<int64_t>(metrics_sent));
      if (points.ok()) {
        for (const MetricPoint& point : *points) {
          JobEvent e;
          *e.mutable_metric() = point;
          if (!writer->Write(e)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
          ++metrics_sent;
        }
      }
      if (job->updated_unix_ms() != last_update) {
        last_update = job->updated_unix_ms();
        JobEvent e;
        *e.mutable_job() = *job;
        if (!writer->Write(e)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      }
      if (IsTerminal(job->state())) break;
      seen = manager_->WaitForChange(seen, std::chrono::milliseconds(500));
    }
    return grpc::Status::OK;
  });
}

}  // namespace trainerd
