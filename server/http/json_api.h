// JsonApi: the HTTP routes of trainerd's API, each the JSON twin of a JobService call
// (protobuf's JSON mapping, the field names of `trainer-cli --json`), and each a thin
// adapter over JobOperations: the access rules, the audit and the errors are the gRPC
// side's. An error is {"code": <gRPC code>, "status": "NOT_FOUND", "message": "..."}
// with the matching HTTP status (google.rpc's table: 400, 401, 403, 404, 409, 429,
// 500, 501, 503, 504).
//
//   GET    /api/v1/whoami
//   GET    /api/v1/jobs                  ?state=RUNNING&state=...&mine=true&page_size=&page_token=
//   POST   /api/v1/jobs                  a SubmitJobRequest
//   GET    /api/v1/jobs/{id}
//   POST   /api/v1/jobs/{id}:cancel
//   POST   /api/v1/jobs/{id}:resume      ?checkpoint_step=&stop_at_step=
//   DELETE /api/v1/jobs/{id}             ?delete_files=true
//   GET    /api/v1/jobs/{id}/metrics     ?name=&split=
//   GET    /api/v1/jobs/{id}/checkpoints
//   GET    /api/v1/jobs/{id}/logs        ?since=&tail=&rank=&level=&limit=; &follow=true: events
//   GET    /api/v1/jobs/{id}/events      ?metrics_offset= (GetMetrics' stored_points): the job's
//                                        changes and its new metric points, as events
//   GET    /api/v1/audit                 ?limit=&before_seq= (admins)
//   GET    /api/v1/sweeps                ?mine=true&page_size=
//   POST   /api/v1/sweeps                a SubmitSweepRequest
//   GET    /api/v1/sweeps/{id}
//   POST   /api/v1/sweeps/{id}:cancel
//
// Follows are server-sent events (text/event-stream): "event: line" with the log line
// (its id is its seq, so Last-Event-ID resumes after it), "event: job" and
// "event: metric" for /events, "event: error" with an error's JSON before a stream
// ends early. Browsers read them with fetch() (EventSource cannot send the
// Authorization header).
#ifndef TRAINERD_SERVER_HTTP_JSON_API_H_
#define TRAINERD_SERVER_HTTP_JSON_API_H_

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "server/api/follow_pump.h"
#include "server/auth/call_origin.h"
#include "trainer/v1/job_service.pb.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace trainerd {

class JobOperations;
class JobRegistry;
class SweepOperations;

class JsonApi {
 public:
  // Every pointer outlives this object. `max_followers`: event streams open at once.
  JsonApi(const JobOperations* operations, const SweepOperations* sweeps, JobRegistry* registry, int max_followers)
      : operations_(operations), sweeps_(sweeps), registry_(registry), max_followers_(max_followers) {}

  // Adds the routes to `http`.
  void Register(httplib::Server* http);
  // Ends every event stream within half a second, and refuses new ones (shutdown).
  void StopFollowers() { stopping_ = true; }
  size_t follower_count() const { return followers_.load(); }

 private:
  // A route's handler: `read(request, &req)` fills the call's request from the URL and
  // body (an error is refused as `method` would refuse it: json_api.cc's
  // RefuseUnreadable), then `call(origin, req)` answers, its result sent as JSON.
  template <typename Req, typename Read, typename Call>
  std::function<void(const httplib::Request&, httplib::Response&)> Route(const char* method, Read read,
                                                                         Call call) const;
  // Sends `items` as server-sent events until the fetch is done, the client goes away
  // or StopFollowers. `event_of(item, &name, &id)` names each item's event (and its id,
  // if any) and returns the message its data is.
  template <typename Item, typename EventOf>
  void SendEvents(httplib::Response& response, FollowFetch<Item> fetch, EventOf event_of);
  // Logs without follow: one JSON page of at most `limit` lines, and the seq the next
  // page starts at (`from_seq` when there was nothing new).
  void SendLogPage(httplib::Response& response, FollowFetch<trainer::v1::LogLine> fetch, int limit, int64_t from_seq);

  // The sweeps' routes (SweepService's twins).
  void RegisterSweeps(httplib::Server* http);

  const JobOperations* const operations_;
  const SweepOperations* const sweeps_;
  JobRegistry* const registry_;
  const int max_followers_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> followers_{0};
};

// The origin of an HTTP request: "http:ADDR:PORT" (https: under TLS), its Authorization
// header, whether it came with a verified client certificate.
CallOrigin CallOriginOf(const httplib::Request& request);
// The HTTP status for an error's code (google.rpc's mapping; 200 for OK).
int HttpStatusOf(absl::StatusCode code);
// An error as the API sends it: {"code", "status", "message"}.
std::string ErrorJson(const absl::Status& status);
// Sends `status` as the API's error (its HTTP status, ErrorJson).
void SendError(httplib::Response& response, const absl::Status& status);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_HTTP_JSON_API_H_
