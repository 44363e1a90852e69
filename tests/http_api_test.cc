// The HTTP side of a real trainerd running real workers: every JSON API route (codes,
// bodies, the errors' shape, bad JSON, oversized bodies, missing and revoked tokens),
// the event streams, the web console's files and the security headers, owners and the
// audit of refused calls, and the refusal of plaintext off loopback.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "proto/json_mapping.h"
#include "tests/daemon_test_util.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using json = nlohmann::json;
using testing::Daemon;
using testing::Spec;
using testing::TempDir;

// Calls the daemon's HTTP side as the holder of `token` ("" sends none).
class Http {
 public:
  Http(const Daemon& d, std::string token) : client_("127.0.0.1", d.http_port()), token_(std::move(token)) {
    client_.set_read_timeout(60, 0);
  }
  httplib::Headers Headers() const {
    if (token_.empty()) return {};
    return {{"Authorization", "Bearer " + token_}};
  }
  httplib::Result Get(const std::string& path) { return client_.Get(path.c_str(), Headers()); }
  httplib::Result Post(const std::string& path, const std::string& body = "") {
    return client_.Post(path.c_str(), Headers(), body, "application/json");
  }
  httplib::Result Delete(const std::string& path) { return client_.Delete(path.c_str(), Headers()); }
  // A GET whose body is read to its end (an event stream until the server ends it).
  std::string Stream(const std::string& path, int* status) {
    std::string body;
    auto r = client_.Get(path.c_str(), Headers(), [&](const char* data, size_t n) {
      body.append(data, n);
      return true;
    });
    *status = r ? r->status : -1;
    return body;
  }

 private:
  httplib::Client client_;
  std::string token_;
};

json Body(const httplib::Result& r) {
  EXPECT_TRUE(r) << "no answer";
  if (!r) return json();
  EXPECT_THAT(r->get_header_value("Content-Type"), StartsWith("application/json")) << r->body;
  return json::parse(r->body, nullptr, /*allow_exceptions=*/false);
}

// The status, the error's gRPC code name, and that the body is the API's error shape.
void ExpectError(const httplib::Result& r, int http_status, const std::string& code, const std::string& says = "") {
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, http_status) << r->body;
  json body = Body(r);
  EXPECT_EQ(body["status"], code) << r->body;
  EXPECT_TRUE(body["code"].is_number()) << r->body;
  if (!says.empty()) EXPECT_THAT(body["message"].get<std::string>(), HasSubstr(says));
}

std::string SubmitBody(const std::string& training_args, const std::string& name) {
  trainer::v1::SubmitJobRequest request;
  *request.mutable_spec() = Spec(training_args);
  request.set_name(name);
  return ToJson(request);
}

// Each event of a server-sent event stream: (event name, data JSON).
std::vector<std::pair<std::string, json>> Events(const std::string& stream) {
  std::vector<std::pair<std::string, json>> events;
  size_t at = 0;
  while (true) {
    const size_t end = stream.find("\n\n", at);
    if (end == std::string::npos) break;
    std::string name, data;
    for (const auto& line : absl::StrSplit(stream.substr(at, end - at), '\n')) {
      if (absl::StartsWith(line, "event: ")) name = std::string(line.substr(7));
      if (absl::StartsWith(line, "data: ")) data = std::string(line.substr(6));
    }
    if (!data.empty()) events.emplace_back(name, json::parse(data));
    at = end + 2;
  }
  return events;
}

TEST(HttpApi, EveryRouteAnswersAsItsGrpcTwin) {
  TempDir dir;
  Daemon d(dir.path().string(), testing::WithHttp());
  Http admin(d, d.admin_token());

  // Who is calling, and the refusals of a call without a valid token.
  json me = Body(admin.Get("/api/v1/whoami"));
  EXPECT_EQ(me["user"], "admin");
  EXPECT_EQ(me["admin"], true);
  ExpectError(Http(d, "").Get("/api/v1/whoami"), 401, "UNAUTHENTICATED", "no access token");
  ExpectError(Http(d, "trd_forged").Get("/api/v1/jobs"), 401, "UNAUTHENTICATED", "not valid");

  // A job submitted as JSON runs to its end; every read route sees it.
  auto submitted = admin.Post(
      "/api/v1/jobs", SubmitBody("max_steps: 30, save_steps: 10, eval_steps: 10, eval_strategy: steps", "http-job"));
  ASSERT_TRUE(submitted);
  ASSERT_EQ(submitted->status, 200) << submitted->body;
  const std::string id = Body(submitted)["job_id"];
  ASSERT_FALSE(id.empty());
  // The job's events: its changes until it ends, and each metric point as it is stored.
  int status = 0;
  auto events = Events(admin.Stream(absl::StrCat("/api/v1/jobs/", id, "/events"), &status));
  EXPECT_EQ(status, 200);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().first, "job");
  EXPECT_EQ(events.back().second["state"], "SUCCEEDED");
  const auto metric_events =
      std::count_if(events.begin(), events.end(), [](const auto& e) { return e.first == "metric"; });

  json job = Body(admin.Get("/api/v1/jobs/" + id));
  EXPECT_EQ(job["id"], id);
  EXPECT_EQ(job["name"], "http-job");
  EXPECT_EQ(job["state"], "SUCCEEDED");
  EXPECT_EQ(job["progress"]["step"], "30");  // int64 as protobuf's JSON mapping writes it

  json list = Body(admin.Get("/api/v1/jobs?state=SUCCEEDED&page_size=10"));
  ASSERT_EQ(list["jobs"].size(), 1u);
  EXPECT_EQ(list["jobs"][0]["id"], id);
  EXPECT_TRUE(Body(admin.Get("/api/v1/jobs?state=RUNNING,QUEUED"))["jobs"].empty());
  ExpectError(admin.Get("/api/v1/jobs?state=BORED"), 400, "INVALID_ARGUMENT", "query parameter state");
  ExpectError(admin.Get("/api/v1/jobs?page_size=100000"), 400, "INVALID_ARGUMENT", "page_size");

  // Metrics: what GetMetrics returns, and what the event stream sent.
  json metrics = Body(admin.Get("/api/v1/jobs/" + id + "/metrics"));
  EXPECT_EQ(metrics["points"].size(), static_cast<size_t>(testing::Metrics(d, id, "").points_size()));
  EXPECT_EQ(static_cast<int64_t>(metrics["points"].size()), metric_events);
  json losses = Body(admin.Get("/api/v1/jobs/" + id + "/metrics?name=loss&split=train"));
  EXPECT_EQ(losses["points"].size(), static_cast<size_t>(testing::Metrics(d, id, "loss", "train").points_size()));
  EXPECT_GE(losses["points"].size(), 5u);

  json checkpoints = Body(admin.Get("/api/v1/jobs/" + id + "/checkpoints"));
  ASSERT_FALSE(checkpoints["checkpoints"].empty());
  EXPECT_EQ(checkpoints["checkpoints"].back()["step"], "30");

  // Logs: a page, its continuation, a tail, the filters; and the same lines as events.
  json page = Body(admin.Get("/api/v1/jobs/" + id + "/logs?limit=5"));
  ASSERT_EQ(page["lines"].size(), 5u);
  EXPECT_EQ(page["lines"][0]["seq"], "1");
  const int64_t next = page["next_seq"];
  EXPECT_EQ(next, 6);
  json rest = Body(admin.Get(absl::StrCat("/api/v1/jobs/", id, "/logs?limit=10000&since=", next)));
  ASSERT_FALSE(rest["lines"].empty());
  EXPECT_EQ(rest["lines"][0]["seq"], "6");
  json tail = Body(admin.Get("/api/v1/jobs/" + id + "/logs?tail=2"));
  ASSERT_EQ(tail["lines"].size(), 2u);
  EXPECT_EQ(tail["lines"][1]["seq"], rest["lines"].back()["seq"]);
  for (const auto& line : Body(admin.Get("/api/v1/jobs/" + id + "/logs?level=warning&limit=10000"))["lines"]) {
    EXPECT_TRUE(line["level"] == "warning" || line["level"] == "error") << line;
  }
  auto followed = Events(admin.Stream("/api/v1/jobs/" + id + "/logs?follow=true&since=6", &status));
  EXPECT_EQ(status, 200);
  ASSERT_EQ(followed.size(), rest["lines"].size());
  EXPECT_EQ(followed.back().second["text"], rest["lines"].back()["text"]);
  ExpectError(admin.Get("/api/v1/jobs/" + id + "/logs?level=loud"), 400, "INVALID_ARGUMENT", "level");
  ExpectError(admin.Get("/api/v1/jobs/" + id + "/logs?since=x"), 400, "INVALID_ARGUMENT", "since");

  // Changes: resume, cancel, delete.
  json resumed = Body(admin.Post("/api/v1/jobs/" + id + ":resume"));
  EXPECT_EQ(resumed["state"], "QUEUED");
  json cancelled = Body(admin.Post("/api/v1/jobs/" + id + ":cancel"));
  EXPECT_TRUE(cancelled["state"] == "CANCELLED" || cancelled["state"] == "CANCELLING") << cancelled;
  testing::WaitFor(d, id, testing::Finished);
  ExpectError(admin.Delete("/api/v1/jobs/" + id + "?delete_files=maybe"), 400, "INVALID_ARGUMENT", "delete_files");
  auto deleted = admin.Delete("/api/v1/jobs/" + id + "?delete_files=true");
  ASSERT_TRUE(deleted);
  EXPECT_EQ(deleted->status, 200) << deleted->body;
  ExpectError(admin.Get("/api/v1/jobs/" + id), 404, "NOT_FOUND");
  ExpectError(admin.Post("/api/v1/jobs/" + id + ":cancel"), 404, "NOT_FOUND");

  // Bad requests: malformed JSON, an unknown field, a body over the bound, unknown routes.
  ExpectError(admin.Post("/api/v1/jobs", "{not json"), 400, "INVALID_ARGUMENT", "request body");
  ExpectError(admin.Post("/api/v1/jobs", R"({"spec": {"training_args": {"learning_rat": 0.1}}})"), 400,
              "INVALID_ARGUMENT", "learning_rat");
  ExpectError(Http(d, "").Post("/api/v1/jobs", "{not json"), 401, "UNAUTHENTICATED");
  ExpectError(admin.Post("/api/v1/jobs", std::string(5 << 20, ' ')), 413, "INVALID_ARGUMENT", "too large");
  ExpectError(admin.Get("/api/v1/nothing"), 404, "NOT_FOUND", "no such route");
  // A spec trainerd refuses names its field, as on gRPC.
  ExpectError(admin.Post("/api/v1/jobs", SubmitBody("max_steps: -5", "bad")), 400, "INVALID_ARGUMENT", "max_steps");

  // The audit log, for admins: the HTTP calls are there with their peer.
  json audit = Body(admin.Get("/api/v1/audit?limit=50"));
  bool http_delete = false;
  for (const auto& event : audit["events"]) {
    if (event["action"] == "DeleteJob" && event["code"] == "OK") {
      http_delete = absl::StartsWith(event["peer"].get<std::string>(), "http:127.0.0.1:");
    }
  }
  EXPECT_TRUE(http_delete) << audit.dump();
}

TEST(HttpApi, UsersSeeOnlyTheirOwnJobsAndRefusalsAreAudited) {
  TempDir dir;
  Daemon d(dir.path().string(), testing::WithHttp());
  Http alice(d, testing::AddUser(d, "alice"));
  const std::string bob_token = testing::AddUser(d, "bob");
  Http bob(d, bob_token);
  auto submitted = alice.Post("/api/v1/jobs", SubmitBody("max_steps: 100000, save_steps: 50", "alices"));
  ASSERT_TRUE(submitted);
  ASSERT_EQ(submitted->status, 200) << submitted->body;
  const std::string id = Body(submitted)["job_id"];

  EXPECT_EQ(Body(alice.Get("/api/v1/jobs"))["jobs"].size(), 1u);
  EXPECT_TRUE(Body(bob.Get("/api/v1/jobs"))["jobs"].empty());
  for (const std::string& path : {"", "/metrics", "/checkpoints", "/logs", "/logs?follow=true", "/events"}) {
    ExpectError(bob.Get("/api/v1/jobs/" + id + path), 403, "PERMISSION_DENIED", "belongs to another user");
  }
  ExpectError(bob.Post("/api/v1/jobs/" + id + ":cancel"), 403, "PERMISSION_DENIED");
  ExpectError(bob.Delete("/api/v1/jobs/" + id), 403, "PERMISSION_DENIED");
  ExpectError(bob.Get("/api/v1/audit"), 403, "PERMISSION_DENIED", "not an admin");

  // A revoked token is refused from then on (the page returns to sign-in on 401).
  auto revoked = testing::RunCommand(
      absl::StrCat(testing::BuildDir(), "/server/trainerd user revoke --data-root ", d.data_root(), " bob"));
  ASSERT_EQ(revoked.exit_code, 0) << revoked.output;
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // the token cache forgets it
  ExpectError(bob.Get("/api/v1/jobs"), 401, "UNAUTHENTICATED", "not valid");

  json cancelled = Body(alice.Post("/api/v1/jobs/" + id + ":cancel"));
  EXPECT_TRUE(cancelled["state"] == "CANCELLED" || cancelled["state"] == "CANCELLING") << cancelled;

  Http admin(d, d.admin_token());
  json audit = Body(admin.Get("/api/v1/audit?limit=100"));
  int refused = 0;
  for (const auto& event : audit["events"]) {
    if (event["user"] == "bob" && event["code"] == "PERMISSION_DENIED") {
      ++refused;
      EXPECT_THAT(event["peer"].get<std::string>(), StartsWith("http:127.0.0.1:"));
    }
  }
  EXPECT_EQ(refused, 9) << audit.dump();  // six reads, cancel, delete, the audit log
}

TEST(HttpApi, TheConsoleIsServedWithAStrictPolicy) {
  TempDir dir;
  Daemon d(dir.path().string(), testing::WithHttp());
  Http anyone(d, "");
  for (const auto& [path, type] :
       std::vector<std::pair<std::string, std::string>>{{"/", "text/html"},
                                                        {"/app.js", "application/javascript"},
                                                        {"/app.css", "text/css"},
                                                        {"/chart.min.js", "application/javascript"},
                                                        {"/api/v1/whoami", "application/json"}}) {
    auto r = anyone.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_THAT(r->get_header_value("Content-Type"), StartsWith(type)) << path;
    const std::string policy = r->get_header_value("Content-Security-Policy");
    EXPECT_THAT(policy, HasSubstr("default-src 'none'")) << path;
    EXPECT_THAT(policy, HasSubstr("script-src 'self';")) << path;
    EXPECT_THAT(policy, HasSubstr("connect-src 'self'")) << path;
    EXPECT_THAT(policy, HasSubstr("frame-ancestors 'none'")) << path;
    EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff") << path;
    EXPECT_EQ(r->get_header_value("Referrer-Policy"), "no-referrer") << path;
  }
  auto page = anyone.Get("/");
  EXPECT_THAT(page->body, HasSubstr("<script src=\"/app.js\""));
  EXPECT_THAT(page->body, ::testing::Not(HasSubstr("<script>")));  // nothing inline
  EXPECT_THAT(anyone.Get("/chart.min.js")->body, HasSubstr("Chart.js v3"));
  // Sent gzipped to a client that takes it (and unpacked by this one).
  httplib::Client raw("127.0.0.1", d.http_port());
  raw.set_decompress(false);
  auto packed = raw.Get("/chart.min.js", {{"Accept-Encoding", "br, gzip"}});
  ASSERT_TRUE(packed);
  EXPECT_EQ(packed->get_header_value("Content-Encoding"), "gzip");
  EXPECT_LT(packed->body.size(), anyone.Get("/chart.min.js")->body.size() / 2);
}

TEST(HttpApi, PlaintextOffLoopbackIsRefused) {
  TempDir dir;
  auto r = testing::RunCommand(
      absl::StrCat(testing::BuildDir(), "/server/trainerd --metrics-port 0 --listen 127.0.0.1:", testing::FreePort(),
                   " --http-listen 0.0.0.0:", testing::FreePort(), " --data-root ", dir / "root"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--http-listen 0.0.0.0:"));
  EXPECT_THAT(r.output, HasSubstr("refusing to serve off loopback without TLS"));
  EXPECT_FALSE(std::filesystem::exists(dir / "root/trainerd.db"));
}

}  // namespace
}  // namespace trainerd
