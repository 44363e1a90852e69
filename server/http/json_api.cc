#include "server/http/json_api.h"

#include <google/protobuf/struct.pb.h>
#include <httplib.h>
#include <openssl/ssl.h>

#include <chrono>
#include <deque>
#include <memory>
#include <thread>
#include <type_traits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "proto/json_mapping.h"
#include "server/api/job_operations.h"
#include "server/api/sweep_operations.h"
#include "server/jobs/job_registry.h"

namespace trainerd {
namespace {

using namespace trainer::v1;
using httplib::Request;
using httplib::Response;

// With the charset, cpp-httplib leaves the body to trainerd's gzip (gzip_body.h).
constexpr char kJsonType[] = "application/json; charset=utf-8";
// An idle event stream sends a comment this often, so that a client that went away is
// noticed (the write fails) and proxies keep the connection open.
constexpr std::chrono::seconds kKeepAliveEvery{15};
// The shortest time between two reads of one event stream.
constexpr std::chrono::milliseconds kReadInterval{250};
// How long an idle stream waits for a change before it looks again.
constexpr std::chrono::milliseconds kIdleWait{500};
// Log lines one page of /logs holds at most.
constexpr int kMaxLogPage = 10000;

// A job id as a route captures it: anything but a slash or a colon (the store says
// whether such a job exists).
constexpr char kId[] = "([^/:]+)";

void SendJson(Response& response, std::string body) {
  response.status = 200;
  response.set_header("Cache-Control", "no-store");
  response.set_content(std::move(body), kJsonType);
}

void SendResult(Response& response, const absl::Status& status) {
  if (status.ok()) {
    SendJson(response, "{}");
  } else {
    SendError(response, status);
  }
}

template <typename T>
void SendResult(Response& response, const absl::StatusOr<T>& result) {
  if (!result.ok()) return SendError(response, result.status());
  if constexpr (std::is_same_v<T, GetMetricsResponse>) {
    SendJson(response, ToJsonInChunks(*result, "points"));  // may be 100,000s of points
  } else {
    SendJson(response, ToJson(*result));
  }
}

// Query parameter `name` as an integer in [min, max] (absent: `*out` stays).
template <typename Int>
absl::Status IntParam(const Request& request, const char* name, Int min, Int max, Int* out) {
  if (!request.has_param(name)) return absl::OkStatus();
  int64_t value = 0;
  if (!absl::SimpleAtoi(request.get_param_value(name), &value) || value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("query parameter ", name, ": expected an integer from ", min, " to ", max));
  }
  *out = static_cast<Int>(value);
  return absl::OkStatus();
}

// Query parameter `name` as true/false (or 1/0; absent: `*out` stays).
absl::Status BoolParam(const Request& request, const char* name, bool* out) {
  if (!request.has_param(name)) return absl::OkStatus();
  const std::string value = request.get_param_value(name);
  if (value == "true" || value == "1") {
    *out = true;
  } else if (value == "false" || value == "0") {
    *out = false;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("query parameter ", name, ": expected true or false"));
  }
  return absl::OkStatus();
}

absl::Status ReadListJobs(const Request& request, ListJobsRequest* list) {
  for (size_t i = 0; i < request.get_param_value_count("state"); ++i) {
    for (absl::string_view name : absl::StrSplit(request.get_param_value("state", i), ',', absl::SkipEmpty())) {
      JobState state;
      if (!JobState_Parse(std::string(name), &state) || state == JOB_STATE_UNSPECIFIED) {
        return absl::InvalidArgumentError(
            absl::StrCat("query parameter state: unknown state \"", std::string(name).substr(0, 40),
                         "\" (QUEUED, STARTING, RUNNING, RESTARTING, CANCELLING, SUCCEEDED, FAILED, CANCELLED)"));
      }
      list->add_states(state);
    }
  }
  int32_t page_size = 0;
  if (absl::Status s = IntParam(request, "page_size", 0, 1000, &page_size); !s.ok()) return s;
  list->set_page_size(page_size);
  list->set_page_token(request.get_param_value("page_token"));
  bool mine = false;
  if (absl::Status s = BoolParam(request, "mine", &mine); !s.ok()) return s;
  list->set_mine(mine);
  return absl::OkStatus();
}

// What /logs asks for; `*limit` is how many lines one page holds.
absl::Status ReadStreamLogs(const Request& request, StreamLogsRequest* logs, int* limit) {
  int64_t since = 1;
  // A reconnecting stream resumes after the last event it got.
  if (int64_t last = 0; absl::SimpleAtoi(request.get_header_value("Last-Event-ID"), &last) && last > 0) {
    since = last + 1;
  }
  if (absl::Status s = IntParam<int64_t>(request, "since", 1, INT64_MAX, &since); !s.ok()) return s;
  logs->set_from_seq(since);
  int32_t tail = 0;
  if (absl::Status s = IntParam(request, "tail", 0, kMaxLogPage, &tail); !s.ok()) return s;
  logs->set_tail(tail);
  if (request.has_param("rank")) {
    int32_t rank = 0;
    if (absl::Status s = IntParam(request, "rank", 0, 1 << 20, &rank); !s.ok()) return s;
    logs->set_rank(rank);
  }
  const std::string level = request.get_param_value("level");
  if (!level.empty() && level != "debug" && level != "info" && level != "warning" && level != "error") {
    return absl::InvalidArgumentError("query parameter level: expected debug, info, warning or error");
  }
  logs->set_min_level(level);
  bool follow = false;
  if (absl::Status s = BoolParam(request, "follow", &follow); !s.ok()) return s;
  logs->set_follow(follow);
  *limit = 1000;
  return IntParam(request, "limit", 1, kMaxLogPage, limit);
}

}  // namespace

CallOrigin CallOriginOf(const Request& request) {
  CallOrigin origin;
  origin.peer =
      absl::StrCat(request.ssl != nullptr ? "https:" : "http:", request.remote_addr, ":", request.remote_port);
  if (request.has_header("Authorization")) origin.authorization = request.get_header_value("Authorization");
  if (request.ssl != nullptr) {
    SSL* ssl = const_cast<SSL*>(request.ssl);
    origin.peer_certificate_verified =
        SSL_get0_peer_certificate(ssl) != nullptr && SSL_get_verify_result(ssl) == X509_V_OK;
  }
  return origin;
}

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string ErrorJson(const absl::Status& status) {
  google::protobuf::Struct error;
  auto& fields = *error.mutable_fields();
  fields["code"].set_number_value(static_cast<int>(status.code()));
  fields["status"].set_string_value(absl::StatusCodeToString(status.code()));
  fields["message"].set_string_value(std::string(status.message()));
  return ToJson(error);
}

void SendError(Response& response, const absl::Status& status) {
  response.status = HttpStatusOf(status.code());
  response.set_header("Cache-Control", "no-store");
  response.set_content(ErrorJson(status), kJsonType);
}

template <typename Req, typename Read, typename Call>
std::function<void(const Request&, Response&)> JsonApi::Route(const char* method, Read read, Call call) const {
  return [this, method, read, call](const Request& q, Response& r) {
    Req request;
    if (absl::Status s = read(q, &request); !s.ok()) {
      return SendError(r, operations_->RefuseUnreadable(CallOriginOf(q), method, s));
    }
    SendResult(r, call(CallOriginOf(q), request));
  };
}

void JsonApi::Register(httplib::Server* http) {
  const std::string job = absl::StrCat("/api/v1/jobs/", kId);
  const JobOperations* ops = operations_;
  // Reads a request whose only field from the URL is the job id.
  const auto job_id = [](const Request& q, auto* request) {
    request->set_job_id(q.matches[1]);
    return absl::OkStatus();
  };
  http->Get("/api/v1/whoami", Route<WhoAmIRequest>(
                                  "WhoAmI", [](const Request&, WhoAmIRequest*) { return absl::OkStatus(); },
                                  [ops](const CallOrigin& o, const WhoAmIRequest&) { return ops->WhoAmI(o); }));
  http->Get("/api/v1/jobs", Route<ListJobsRequest>("ListJobs", ReadListJobs, [ops](const CallOrigin& o, const auto& q) {
              return ops->ListJobs(o, q);
            }));
  http->Post("/api/v1/jobs",
             Route<SubmitJobRequest>(
                 "SubmitJob",
                 [](const Request& q, SubmitJobRequest* submit) { return FromJson(q.body, submit, "request body"); },
                 [ops](const CallOrigin& o, const auto& q) { return ops->SubmitJob(o, q); }));
  http->Get(job, Route<GetJobRequest>("GetJob", job_id,
                                      [ops](const CallOrigin& o, const auto& q) { return ops->GetJob(o, q); }));
  http->Post(job + ":cancel", Route<CancelJobRequest>("CancelJob", job_id, [ops](const CallOrigin& o, const auto& q) {
               return ops->CancelJob(o, q);
             }));
  http->Post(job + ":resume", Route<ResumeJobRequest>(
                                  "ResumeJob",
                                  [](const Request& q, ResumeJobRequest* resume) {
                                    resume->set_job_id(q.matches[1]);
                                    int64_t step = 0, stop_at = 0;
                                    absl::Status s = IntParam<int64_t>(q, "checkpoint_step", 0, INT64_MAX, &step);
                                    if (s.ok()) s = IntParam<int64_t>(q, "stop_at_step", 0, INT64_MAX, &stop_at);
                                    resume->set_checkpoint_step(step);
                                    resume->set_stop_at_step(stop_at);
                                    return s;
                                  },
                                  [ops](const CallOrigin& o, const auto& q) { return ops->ResumeJob(o, q); }));
  http->Delete(job, Route<DeleteJobRequest>(
                        "DeleteJob",
                        [](const Request& q, DeleteJobRequest* del) {
                          del->set_job_id(q.matches[1]);
                          bool files = false;
                          absl::Status s = BoolParam(q, "delete_files", &files);
                          del->set_delete_files(files);
                          return s;
                        },
                        [ops](const CallOrigin& o, const auto& q) { return ops->DeleteJob(o, q); }));
  http->Get(job + "/metrics", Route<GetMetricsRequest>(
                                  "GetMetrics",
                                  [](const Request& q, GetMetricsRequest* metrics) {
                                    metrics->set_job_id(q.matches[1]);
                                    metrics->set_name(q.get_param_value("name"));
                                    metrics->set_split(q.get_param_value("split"));
                                    return absl::OkStatus();
                                  },
                                  [ops](const CallOrigin& o, const auto& q) { return ops->GetMetrics(o, q); }));
  http->Get(job + "/checkpoints",
            Route<ListCheckpointsRequest>("ListCheckpoints", job_id, [ops](const CallOrigin& o, const auto& q) {
              return ops->ListCheckpoints(o, q);
            }));
  http->Get("/api/v1/audit", Route<ListAuditEventsRequest>(
                                 "ListAuditEvents",
                                 [](const Request& q, ListAuditEventsRequest* audit) {
                                   int32_t limit = 0;
                                   int64_t before = 0;
                                   absl::Status s = IntParam(q, "limit", 0, 10000, &limit);
                                   if (s.ok()) s = IntParam<int64_t>(q, "before_seq", 0, INT64_MAX, &before);
                                   audit->set_limit(limit);
                                   audit->set_before_seq(before);
                                   return s;
                                 },
                                 [ops](const CallOrigin& o, const auto& q) { return ops->ListAuditEvents(o, q); }));
  RegisterSweeps(http);
  // The follows: the same reading and refusals, then a stream instead of one answer.
  http->Get(job + "/logs", [this](const Request& q, Response& r) {
    StreamLogsRequest logs;
    logs.set_job_id(q.matches[1]);
    int limit = 0;
    if (absl::Status s = ReadStreamLogs(q, &logs, &limit); !s.ok()) {
      return SendError(r, operations_->RefuseUnreadable(CallOriginOf(q), "StreamLogs", s));
    }
    absl::StatusOr<FollowFetch<LogLine>> fetch = operations_->StreamLogs(CallOriginOf(q), logs);
    if (!fetch.ok()) return SendError(r, fetch.status());
    if (!logs.follow()) return SendLogPage(r, std::move(*fetch), limit, logs.from_seq());
    SendEvents<LogLine>(
        r, std::move(*fetch),
        [](const LogLine& line, std::string* name, std::string* id) -> const google::protobuf::Message& {
          *name = "line";
          *id = std::to_string(line.seq());
          return line;
        });
  });
  http->Get(job + "/events", [this](const Request& q, Response& r) {
    WatchJobRequest watch;
    watch.set_job_id(q.matches[1]);
    int64_t offset = 0;
    if (absl::Status s = IntParam<int64_t>(q, "metrics_offset", 0, INT64_MAX, &offset); !s.ok()) {
      return SendError(r, operations_->RefuseUnreadable(CallOriginOf(q), "WatchJob", s));
    }
    watch.set_metrics_offset(offset);
    absl::StatusOr<FollowFetch<JobEvent>> fetch = operations_->WatchJob(CallOriginOf(q), watch);
    if (!fetch.ok()) return SendError(r, fetch.status());
    SendEvents<JobEvent>(
        r, std::move(*fetch),
        [](const JobEvent& event, std::string* name, std::string*) -> const google::protobuf::Message& {
          *name = event.has_job() ? "job" : "metric";
          if (event.has_job()) return event.job();
          return event.metric();
        });
  });
}

void JsonApi::SendLogPage(Response& response, FollowFetch<LogLine> fetch, int limit, int64_t from_seq) {
  std::deque<LogLine> lines;
  bool done = false;
  while (!done && static_cast<int>(lines.size()) < limit) {
    const size_t before = lines.size();
    if (absl::Status s = fetch(&lines, &done); !s.ok()) return SendError(response, s);
    if (lines.size() == before) break;
  }
  if (static_cast<int>(lines.size()) > limit) lines.resize(limit);
  std::string body = "{\"lines\":[";
  for (size_t i = 0; i < lines.size(); ++i) absl::StrAppend(&body, i == 0 ? "" : ",", ToJson(lines[i]));
  // Where the next page starts: after the last line sent (or where this one started).
  absl::StrAppend(&body, "],\"next_seq\":", lines.empty() ? from_seq : lines.back().seq() + 1, "}");
  SendJson(response, std::move(body));
}

template <typename Item, typename EventOf>
void JsonApi::SendEvents(Response& response, FollowFetch<Item> fetch, EventOf event_of) {
  if (stopping_) return SendError(response, absl::UnavailableError("trainerd is shutting down; reconnect"));
  if (followers_.fetch_add(1) >= max_followers_) {
    followers_.fetch_sub(1);
    return SendError(response, absl::UnavailableError(absl::StrCat("too many event streams open (", max_followers_,
                                                                   "); try again later")));
  }
  struct Stream {
    FollowFetch<Item> fetch;
    std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point last_read;
    bool done = false;
  };
  auto stream = std::make_shared<Stream>(Stream{std::move(fetch)});
  response.set_header("Cache-Control", "no-store");
  response.set_chunked_content_provider(
      // Exactly this type: cpp-httplib compresses any other text/ type, and a compressed
      // stream reaches the browser only when the compressor flushes.
      "text/event-stream",
      [this, stream, event_of](size_t, httplib::DataSink& sink) -> bool {
        const auto write = [&](const std::string& text) {
          stream->last_write = std::chrono::steady_clock::now();
          return sink.write(text.data(), text.size());
        };
        while (!stopping_) {
          // At most one read per interval: what changed meanwhile comes in one batch (a
          // job's many progress updates as its latest state), so a chatty job costs each
          // follower a few reads a second, not one per change.
          const auto next_read = stream->last_read + kReadInterval;
          if (std::chrono::steady_clock::now() < next_read) std::this_thread::sleep_until(next_read);
          stream->last_read = std::chrono::steady_clock::now();
          const uint64_t seen = registry_->change_counter();
          std::deque<Item> items;
          if (absl::Status s = stream->fetch(&items, &stream->done); !s.ok()) {
            write(absl::StrCat("event: error\ndata: ", ErrorJson(s), "\n\n"));
            break;
          }
          std::string text;
          for (const Item& item : items) {
            std::string name, id;
            const google::protobuf::Message& data = event_of(item, &name, &id);
            absl::StrAppend(&text, "event: ", name, "\n", id.empty() ? "" : absl::StrCat("id: ", id, "\n"),
                            "data: ", ToJson(data), "\n\n");
          }
          if (!text.empty() && !write(text)) return false;  // the client went away
          if (stream->done) break;
          if (!text.empty()) return true;  // called again at once
          if (std::chrono::steady_clock::now() - stream->last_write > kKeepAliveEvery && !write(": keep-alive\n\n")) {
            return false;
          }
          registry_->WaitForChange(seen, kIdleWait);
        }
        sink.done();
        return true;
      },
      [this](bool) { followers_.fetch_sub(1); });
}

void JsonApi::RegisterSweeps(httplib::Server* http) {
  const std::string sweep = absl::StrCat("/api/v1/sweeps/", kId);
  const SweepOperations* ops = sweeps_;
  http->Get("/api/v1/sweeps", Route<ListSweepsRequest>(
                                  "ListSweeps",
                                  [](const Request& q, ListSweepsRequest* list) {
                                    int32_t page_size = 0;
                                    bool mine = false;
                                    absl::Status s = IntParam(q, "page_size", 0, 1000, &page_size);
                                    if (s.ok()) s = BoolParam(q, "mine", &mine);
                                    list->set_page_size(page_size);
                                    list->set_mine(mine);
                                    return s;
                                  },
                                  [ops](const CallOrigin& o, const auto& q) { return ops->ListSweeps(o, q); }));
  http->Post("/api/v1/sweeps",
             Route<SubmitSweepRequest>(
                 "SubmitSweep",
                 [](const Request& q, SubmitSweepRequest* submit) { return FromJson(q.body, submit, "request body"); },
                 [ops](const CallOrigin& o, const auto& q) { return ops->SubmitSweep(o, q); }));
  const auto sweep_id = [](const Request& q, auto* request) {
    request->set_sweep_id(q.matches[1]);
    return absl::OkStatus();
  };
  http->Get(sweep, Route<GetSweepRequest>("GetSweep", sweep_id,
                                          [ops](const CallOrigin& o, const auto& q) { return ops->GetSweep(o, q); }));
  http->Post(sweep + ":cancel", Route<CancelSweepRequest>("CancelSweep", sweep_id, [ops](const CallOrigin& o,
                                                                                        const auto& q) {
               return ops->CancelSweep(o, q);
             }));
}

}  // namespace trainerd
