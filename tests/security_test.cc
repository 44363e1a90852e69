// Identity and access against a real trainerd on loopback: users and tokens, owners,
// revocation, the audit log, token files, TLS (plaintext refused off loopback, server
// verification by clients and workers, client certificates). Spec confinement, bounds
// and fuzzing are in daemon_test and spec_policy_test.
#include <signal.h>
#include <sys/stat.h>

#include <httplib.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "common/tls_credentials.h"
#include "tests/daemon_test_util.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::AddUser;
using testing::Daemon;
using testing::RunCommand;
using testing::Spec;
using testing::TempDir;
using trainer::v1::Job;

// Calls as the holder of `token` ("" sends none).
class As {
 public:
  As(Daemon& d, std::string token) : d_(d), token_(std::move(token)) {}
  std::unique_ptr<grpc::ClientContext> Context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!token_.empty()) Daemon::AuthorizeAs(token_, ctx.get());
    return ctx;
  }
  grpc::Status Submit(std::string* id, int priority = 0) {
    trainer::v1::SubmitJobRequest req;
    *req.mutable_spec() = Spec("max_steps: 100000, save_steps: 20");
    req.set_priority(priority);
    trainer::v1::SubmitJobResponse resp;
    grpc::Status s = d_.stub().SubmitJob(Context().get(), req, &resp);
    *id = resp.job_id();
    return s;
  }
  grpc::StatusCode GetJob(const std::string& id, Job* job = nullptr) {
    trainer::v1::GetJobRequest req;
    req.set_job_id(id);
    Job out;
    grpc::Status s = d_.stub().GetJob(Context().get(), req, &out);
    if (job != nullptr) *job = out;
    return s.error_code();
  }
  grpc::StatusCode Cancel(const std::string& id) {
    trainer::v1::CancelJobRequest req;
    req.set_job_id(id);
    Job out;
    return d_.stub().CancelJob(Context().get(), req, &out).error_code();
  }
  grpc::StatusCode Resume(const std::string& id) {
    trainer::v1::ResumeJobRequest req;
    req.set_job_id(id);
    Job out;
    return d_.stub().ResumeJob(Context().get(), req, &out).error_code();
  }
  grpc::StatusCode Delete(const std::string& id, bool files = true) {
    trainer::v1::DeleteJobRequest req;
    req.set_job_id(id);
    req.set_delete_files(files);
    trainer::v1::DeleteJobResponse out;
    return d_.stub().DeleteJob(Context().get(), req, &out).error_code();
  }
  grpc::StatusCode Logs(const std::string& id) {
    trainer::v1::StreamLogsRequest req;
    req.set_job_id(id);
    auto ctx = Context();
    auto reader = d_.stub().StreamLogs(ctx.get(), req);
    trainer::v1::LogLine line;
    while (reader->Read(&line)) {
    }
    return reader->Finish().error_code();
  }
  grpc::StatusCode Metrics(const std::string& id) {
    trainer::v1::GetMetricsRequest req;
    req.set_job_id(id);
    trainer::v1::GetMetricsResponse out;
    return d_.stub().GetMetrics(Context().get(), req, &out).error_code();
  }
  grpc::StatusCode Checkpoints(const std::string& id) {
    trainer::v1::ListCheckpointsRequest req;
    req.set_job_id(id);
    trainer::v1::ListCheckpointsResponse out;
    return d_.stub().ListCheckpoints(Context().get(), req, &out).error_code();
  }
  std::vector<std::string> List(bool mine = false) {
    trainer::v1::ListJobsRequest req;
    req.set_mine(mine);
    trainer::v1::ListJobsResponse out;
    EXPECT_TRUE(d_.stub().ListJobs(Context().get(), req, &out).ok());
    std::vector<std::string> ids;
    for (const Job& j : out.jobs()) ids.push_back(j.id());
    return ids;
  }
  grpc::Status Audit(std::vector<trainer::v1::AuditEvent>* events) {
    trainer::v1::ListAuditEventsRequest req;
    trainer::v1::ListAuditEventsResponse out;
    grpc::Status s = d_.stub().ListAuditEvents(Context().get(), req, &out);
    events->assign(out.events().begin(), out.events().end());
    return s;
  }

 private:
  Daemon& d_;
  std::string token_;
};

bool Running(const Job& j) { return j.state() == trainer::v1::RUNNING && j.progress().step() > 0; }

TEST(Security, UsersReadAndChangeOnlyTheirOwnJobs) {
  TempDir dir;
  Daemon d(dir.path().string());
  As alice(d, AddUser(d, "alice")), bob(d, AddUser(d, "bob")), admin(d, d.admin_token());
  std::string id;
  ASSERT_TRUE(alice.Submit(&id).ok());
  Job job;
  ASSERT_EQ(alice.GetJob(id, &job), grpc::StatusCode::OK);
  EXPECT_EQ(job.owner(), "alice");
  testing::WaitFor(d, id, Running);

  // Every verb of bob's on alice's job is refused, and her job runs on untouched.
  EXPECT_EQ(bob.GetJob(id), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(bob.Cancel(id), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(bob.Resume(id), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(bob.Delete(id), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(bob.Logs(id), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(bob.Metrics(id), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(bob.Checkpoints(id), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(bob.List(), Not(::testing::Contains(id)));
  ASSERT_EQ(alice.GetJob(id, &job), grpc::StatusCode::OK);
  EXPECT_EQ(job.state(), trainer::v1::RUNNING);
  EXPECT_EQ(job.restarts(), 0);

  // Bob's own job is his; the admin sees both, and --mine keeps to the caller's.
  std::string bobs;
  ASSERT_TRUE(bob.Submit(&bobs).ok());
  EXPECT_THAT(bob.List(), ::testing::ElementsAre(bobs));
  EXPECT_THAT(alice.List(), ::testing::ElementsAre(id));
  EXPECT_THAT(admin.List(), ::testing::UnorderedElementsAre(id, bobs));
  EXPECT_THAT(admin.List(/*mine=*/true), ::testing::IsEmpty());
  EXPECT_EQ(admin.Cancel(bobs), grpc::StatusCode::OK);
  EXPECT_EQ(alice.Cancel(id), grpc::StatusCode::OK);
  testing::WaitFor(d, id, testing::Finished);

  // Deleted without its files, the folder stays alice's: bob may not delete it, she may;
  // a name that is no job id never reaches the file system.
  const std::string folder = dir / ("jobs/" + id);
  EXPECT_EQ(alice.Delete(id, /*files=*/false), grpc::StatusCode::OK);
  ASSERT_TRUE(std::filesystem::exists(folder));
  EXPECT_EQ(bob.Delete(id), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(bob.Delete("../jobs"), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(std::filesystem::exists(folder));
  EXPECT_EQ(alice.Delete(id), grpc::StatusCode::OK);
  EXPECT_FALSE(std::filesystem::exists(folder));
  EXPECT_EQ(alice.Delete(id), grpc::StatusCode::NOT_FOUND);

  // The refusals and the changes are in the audit log, which only admins read.
  std::vector<trainer::v1::AuditEvent> events;
  EXPECT_EQ(alice.Audit(&events).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(admin.Audit(&events).ok());
  int bob_refused = 0, cancels = 0, user_adds = 0;
  for (const auto& e : events) {
    bob_refused += e.user() == "bob" && e.code() == "PERMISSION_DENIED" && e.job_id() == id;
    cancels += e.action() == "CancelJob" && e.code() == "OK";
    user_adds += e.action() == "user add" && e.code() == "OK";
  }
  EXPECT_EQ(bob_refused, 8);  // 7 verbs on the running job, 1 delete of the kept folder
  EXPECT_EQ(cancels, 2);
  EXPECT_EQ(user_adds, 2);
}

TEST(Security, CallsWithoutAValidTokenAreUnauthenticated) {
  TempDir dir;
  Daemon d(dir.path().string());
  struct stat st {};
  ASSERT_EQ(::stat((dir / "admin.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string token = AddUser(d, "carol");
  EXPECT_THAT(token, ::testing::MatchesRegex("trd_[0-9a-f]{64}"));
  As carol(d, token), nobody(d, ""), forger(d, "trd_" + std::string(64, '0')), admin(d, d.admin_token());
  std::string id;
  ASSERT_TRUE(carol.Submit(&id).ok());
  std::string refused;
  EXPECT_EQ(nobody.Submit(&refused).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(nobody.GetJob(id), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(forger.Cancel(id), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(As(d, std::string(1000, 'x')).GetJob(id), grpc::StatusCode::UNAUTHENTICATED);

  // Revoked while trainerd runs: the next call is refused; the job stays, for admins.
  auto r = RunCommand(absl::StrCat(testing::BuildDir(), "/server/trainerd user revoke --data-root ", d.data_root(),
                                   " carol"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // trainerd remembers a checked token for a second (AccessControl::kTokenCacheTtl).
  const auto revoked = std::chrono::steady_clock::now();
  while (carol.GetJob(id) == grpc::StatusCode::OK && std::chrono::steady_clock::now() - revoked < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - revoked, std::chrono::milliseconds(1500));
  EXPECT_EQ(carol.GetJob(id), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(admin.GetJob(id), grpc::StatusCode::OK);
  r = RunCommand(absl::StrCat(testing::BuildDir(), "/server/trainerd user list --data-root ", d.data_root()));
  EXPECT_THAT(r.output, HasSubstr("carol"));
  EXPECT_THAT(r.output, HasSubstr("revoked"));
  EXPECT_THAT(r.output, Not(HasSubstr(token)));
  r = RunCommand(absl::StrCat(testing::BuildDir(), "/server/trainerd user add --data-root ", d.data_root(), " ../x"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("user name"));

  std::vector<trainer::v1::AuditEvent> events;
  ASSERT_TRUE(admin.Audit(&events).ok());
  int unauthenticated = 0, revokes = 0;
  for (const auto& e : events) {
    unauthenticated += e.code() == "UNAUTHENTICATED";
    revokes += e.action() == "user revoke";
    EXPECT_THAT(e.detail(), Not(HasSubstr(token)));
  }
  EXPECT_GE(unauthenticated, 5);
  EXPECT_EQ(revokes, 1);
  EXPECT_EQ(admin.Cancel(id), grpc::StatusCode::OK);
}

TEST(Security, TheFirstAdminsTokenCanComeFromAMountedSecret) {
  TempDir dir, secret;
  const std::string token = "trd_" + std::string(64, 'a');
  testing::WriteFile(secret / "token", token + "\n");
  ::chmod((secret / "token").c_str(), 0644);
  auto r = RunCommand(absl::StrCat(testing::BuildDir(), "/server/trainerd --metrics-port 0 --http-port 0 --listen 127.0.0.1:",
                                   testing::FreePort(), " --data-root ", dir / "refused", " --admin-token-file ",
                                   secret / "token"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("others may read it (mode 0644)"));
  EXPECT_THAT(r.output, Not(HasSubstr(token)));
  ::chmod((secret / "token").c_str(), 0640);  // a Secret with an fsGroup is group-readable
  Daemon d(dir / "root", {"--admin-token-file", secret / "token"});
  As admin(d, token);
  std::string id;
  EXPECT_TRUE(admin.Submit(&id).ok());
  EXPECT_EQ(admin.Cancel(id), grpc::StatusCode::OK);
  EXPECT_FALSE(std::filesystem::exists(dir / "root/admin.token"));
}

TEST(Security, ShareReadLetsEveryUserReadButNotChange) {
  TempDir dir;
  Daemon d(dir.path().string(), {"--share-read"});
  As alice(d, AddUser(d, "alice")), bob(d, AddUser(d, "bob"));
  std::string id;
  ASSERT_TRUE(alice.Submit(&id).ok());
  EXPECT_EQ(bob.GetJob(id), grpc::StatusCode::OK);
  EXPECT_EQ(bob.Metrics(id), grpc::StatusCode::OK);
  EXPECT_THAT(bob.List(), ::testing::ElementsAre(id));
  EXPECT_THAT(bob.List(/*mine=*/true), ::testing::IsEmpty());
  EXPECT_EQ(bob.Cancel(id), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(bob.Delete(id), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(alice.Cancel(id), grpc::StatusCode::OK);
}

TEST(Security, TrainerCliRefusesTokenFilesOthersCanRead) {
  TempDir dir;
  Daemon d(dir.path().string());
  const std::string token = AddUser(d, "dave");
  std::filesystem::create_directories(dir / "config/trainerd");
  testing::WriteFile(dir / "config/trainerd/token", token + "\n");
  ::chmod((dir / "config/trainerd/token").c_str(), 0644);
  const std::string cli = absl::StrCat("XDG_CONFIG_HOME=", dir / "config", " TRAINER_TOKEN= TRAINERD_DATA_ROOT=",
                                       dir / "elsewhere", " ", testing::BuildDir(),
                                       "/client/trainer-cli --server 127.0.0.1:", d.port(), " whoami");
  auto r = RunCommand(cli);
  EXPECT_EQ(r.exit_code, 8) << r.output;
  EXPECT_THAT(r.output, HasSubstr("group or others may read it (mode 0644)"));
  EXPECT_THAT(r.output, Not(HasSubstr(token)));
  ::chmod((dir / "config/trainerd/token").c_str(), 0600);
  r = RunCommand(cli);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(absl::StripAsciiWhitespace(r.output), "dave");
  // Without any token, the answer says where one goes.
  r = RunCommand(absl::StrCat("XDG_CONFIG_HOME=", dir / "none", " TRAINER_TOKEN= TRAINERD_DATA_ROOT=", dir / "none",
                              " ", testing::BuildDir(), "/client/trainer-cli --server 127.0.0.1:", d.port(), " list"));
  EXPECT_EQ(r.exit_code, 8) << r.output;
  EXPECT_THAT(r.output, HasSubstr("~/.config/trainerd/token"));
  // ... and where trainer-cli looked for the first admin's token, which a trainerd
  // started with --data-root keeps there (before, the message did not name it).
  EXPECT_THAT(r.output, HasSubstr(dir / "none/admin.token"));
  EXPECT_THAT(r.output, HasSubstr("TRAINERD_DATA_ROOT"));
}

// A user revoked and added again under the same name is a new account: the jobs of the
// old one are not the new token's to read, cancel or delete (before, they were: jobs
// belonged to the name).
TEST(Security, ANameAddedAgainAfterARevokeIsANewAccount) {
  TempDir dir;
  Daemon d(dir.path().string());
  As first(d, AddUser(d, "erin")), admin(d, d.admin_token());
  std::string id;
  ASSERT_TRUE(first.Submit(&id).ok());
  auto r = RunCommand(absl::StrCat(testing::BuildDir(), "/server/trainerd user revoke --data-root ", d.data_root(),
                                   " erin"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  As second(d, AddUser(d, "erin"));
  std::string theirs;
  ASSERT_TRUE(second.Submit(&theirs).ok());
  EXPECT_EQ(second.GetJob(id), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(second.Cancel(id), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(second.Delete(id), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(second.List(), ::testing::ElementsAre(theirs));
  Job job;
  ASSERT_EQ(admin.GetJob(id, &job), grpc::StatusCode::OK);
  EXPECT_EQ(job.owner(), "erin");
  Job new_job;
  ASSERT_EQ(second.GetJob(theirs, &new_job), grpc::StatusCode::OK);
  EXPECT_NE(job.owner_id(), new_job.owner_id());
  EXPECT_EQ(admin.Cancel(id), grpc::StatusCode::OK);
  EXPECT_EQ(second.Cancel(theirs), grpc::StatusCode::OK);
}

// A rotated token keeps the account: the new token reaches the user's jobs, the old one
// stops working.
TEST(Security, ARotatedTokenKeepsTheUsersJobs) {
  TempDir dir;
  Daemon d(dir.path().string());
  const std::string old_token = AddUser(d, "gina");
  As before(d, old_token);
  std::string id;
  ASSERT_TRUE(before.Submit(&id).ok());
  auto r = RunCommand(absl::StrCat(testing::BuildDir(), "/server/trainerd user rotate --data-root ", d.data_root(),
                                   " gina"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t at = r.output.find("trd_");
  ASSERT_NE(at, std::string::npos) << r.output;
  As after(d, r.output.substr(at, r.output.find('\n', at) - at));
  EXPECT_EQ(after.GetJob(id), grpc::StatusCode::OK);
  EXPECT_THAT(after.List(), ::testing::ElementsAre(id));
  const auto rotated = std::chrono::steady_clock::now();
  while (before.GetJob(id) == grpc::StatusCode::OK &&
         std::chrono::steady_clock::now() - rotated < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(before.GetJob(id), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(after.Cancel(id), grpc::StatusCode::OK);
  r = RunCommand(absl::StrCat(testing::BuildDir(), "/server/trainerd user rotate --data-root ", d.data_root(), " nobody"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("no active user nobody"));
}

// Priorities above the operator's limit are for admins (before, any user could take
// the head of the queue with 2^31-1).
TEST(Security, PrioritiesAboveTheOperatorsLimitAreForAdmins) {
  TempDir dir;
  Daemon d(dir.path().string(), {"--max-user-priority", "10"});
  As frank(d, AddUser(d, "frank")), admin(d, d.admin_token());
  std::string id;
  const grpc::Status refused = frank.Submit(&id, 2147483647);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.error_message(), HasSubstr("priority: at most 10 for users who are not admins"));
  ASSERT_TRUE(frank.Submit(&id, 10).ok());
  EXPECT_EQ(frank.Cancel(id), grpc::StatusCode::OK);
  ASSERT_TRUE(admin.Submit(&id, 2147483647).ok());
  EXPECT_EQ(admin.Cancel(id), grpc::StatusCode::OK);
}

// trainerd's own credentials are never readable by jobs, whatever the data folders
// are: the daemon account's ~/.config/trainerd and its admin token file, even inside a
// --data-dir. And the default data folders do not open the home folder (before, $HOME
// was one of them).
TEST(Security, JobsCannotReadTrainerdsOwnCredentials) {
  TempDir dir;
  const std::string home = dir / "home";
  std::filesystem::create_directories(home + "/.config/trainerd");
  testing::WriteFile(home + "/.config/trainerd/token", "trd_secret\n");
  testing::WriteFile(home + "/admin-token", "trd_" + std::string(64, 'b') + "\n");  // the admin's, below
  ::chmod((home + "/admin-token").c_str(), 0600);
  testing::WriteFile(home + "/table.csv", "x,label\n1,0\n");
  const char* saved = std::getenv("HOME");
  const std::string saved_home = saved == nullptr ? "" : saved;
  ::setenv("HOME", home.c_str(), 1);  // the daemon account's home, for the daemons started below
  const std::string admin_token = "trd_" + std::string(64, 'b');
  auto problems = [&admin_token](Daemon& d, const std::string& path) {
    grpc::ClientContext ctx;
    Daemon::AuthorizeAs(std::filesystem::exists(d.data_root() + "/admin.token") ? d.admin_token() : admin_token, &ctx);
    trainer::v1::SubmitJobRequest req;
    *req.mutable_spec() = Spec("max_steps: 1");
    req.mutable_spec()->mutable_data()->mutable_train()->set_path(path);
    req.mutable_spec()->mutable_data()->mutable_train()->set_format("csv");
    req.set_validate_only(true);
    trainer::v1::SubmitJobResponse resp;
    return d.stub().SubmitJob(&ctx, req, &resp).error_message();
  };
  {
    Daemon defaults(dir / "root1");
    EXPECT_THAT(problems(defaults, home + "/table.csv"), HasSubstr("data.train.path: is not under a folder"));
  }
  {
    Daemon opened(dir / "root2", {"--data-dir", home, "--admin-token-file", home + "/admin-token"});
    EXPECT_THAT(problems(opened, home + "/table.csv"), Not(HasSubstr("data.train.path")));
    for (const std::string& secret : {home + "/.config/trainerd/token", home + "/admin-token"}) {
      EXPECT_THAT(problems(opened, secret), HasSubstr("data.train.path: is not under a folder")) << secret;
    }
  }
  if (saved != nullptr) ::setenv("HOME", saved_home.c_str(), 1); else ::unsetenv("HOME");
}

// A CA, a server certificate for 127.0.0.1 and client certificates, made with openssl.
class Certificates {
 public:
  explicit Certificates(const TempDir& dir) : dir_(dir) {
    Make("ca", "", "/CN=trainerd test CA");
    Make("server", "ca", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost");
    Make("client", "ca", "/CN=alice", "extendedKeyUsage=clientAuth");
    Make("rogue-ca", "", "/CN=somebody else");
    Make("rogue", "rogue-ca", "/CN=mallory", "extendedKeyUsage=clientAuth");
  }
  std::string operator()(const std::string& file) const { return dir_ / file; }
  std::shared_ptr<grpc::ChannelCredentials> Client(const std::string& cert = "") const {
    TlsClientFiles files{(*this)("ca.pem"), cert.empty() ? "" : (*this)(cert + ".pem"),
                         cert.empty() ? "" : (*this)(cert + ".key")};
    auto credentials = MakeChannelCredentials(files);
    EXPECT_TRUE(credentials.ok()) << credentials.status();
    return *credentials;
  }

 private:
  void Make(const std::string& name, const std::string& issuer, const std::string& subject,
            const std::string& extension = "") {
    const std::string key = absl::StrCat("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ",
                                         dir_ / (name + ".key"), " -subj '", subject, "'");
    std::string command;
    if (issuer.empty()) {
      command = absl::StrCat(key, " -x509 -days 2 -out ", dir_ / (name + ".pem"));
    } else {
      testing::WriteFile(dir_ / (name + ".ext"), extension + "\n");
      command = absl::StrCat(key, " -out ", dir_ / (name + ".csr"), " && openssl x509 -req -days 2 -in ",
                             dir_ / (name + ".csr"), " -CA ", dir_ / (issuer + ".pem"), " -CAkey ",
                             dir_ / (issuer + ".key"), " -CAcreateserial -extfile ", dir_ / (name + ".ext"), " -out ",
                             dir_ / (name + ".pem"));
    }
    auto r = RunCommand(command);
    ASSERT_EQ(r.exit_code, 0) << command << "\n" << r.output;
  }
  const TempDir& dir_;
};

grpc::StatusCode WhoAmI(const std::shared_ptr<grpc::ChannelCredentials>& credentials, int port,
                        const std::string& token) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub = trainer::v1::JobService::NewStub(
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), credentials, args));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  Daemon::AuthorizeAs(token, &ctx);
  trainer::v1::WhoAmIResponse resp;
  return stub->WhoAmI(&ctx, trainer::v1::WhoAmIRequest(), &resp).error_code();
}

// The HTTP status of GET /api/v1/whoami over HTTPS, verifying the server with the test CA
// and presenting certificate `cert` ("" none); -1 when no answer came (a refused
// handshake, or the server does not speak TLS).
int HttpsWhoAmI(const Certificates& certs, int port, const std::string& token, const std::string& cert = "") {
  ::signal(SIGPIPE, SIG_IGN);  // a refused handshake closes the socket under the client's write
  httplib::SSLClient client("127.0.0.1", port, cert.empty() ? std::string() : certs(cert + ".pem"),
                            cert.empty() ? std::string() : certs(cert + ".key"));
  client.set_ca_cert_path(certs("ca.pem"));
  client.enable_server_certificate_verification(true);
  client.set_connection_timeout(5, 0);
  auto r = client.Get("/api/v1/whoami", {{"Authorization", "Bearer " + token}});
  return r ? r->status : -1;
}

TEST(Security, TlsServesClientsAndWorkersThatVerifyIt) {
  TempDir dir, certs_dir;
  Certificates certs(certs_dir);
  Daemon d(dir.path().string(),
           testing::WithHttp(
               {"--tls-cert", certs("server.pem"), "--tls-key", certs("server.key"), "--tls-ca", certs("ca.pem")}),
           certs.Client());
  EXPECT_EQ(WhoAmI(certs.Client(), d.port(), d.admin_token()), grpc::StatusCode::OK);
  EXPECT_EQ(WhoAmI(grpc::InsecureChannelCredentials(), d.port(), d.admin_token()), grpc::StatusCode::UNAVAILABLE);
  // The web console and JSON API serve HTTPS with the same files, and no plaintext.
  EXPECT_EQ(HttpsWhoAmI(certs, d.http_port(), d.admin_token()), 200);
  EXPECT_EQ(HttpsWhoAmI(certs, d.http_port(), "trd_forged"), 401);
  ::signal(SIGPIPE, SIG_IGN);
  httplib::Client plain("127.0.0.1", d.http_port());
  plain.set_connection_timeout(5, 0);
  auto answered = plain.Get("/api/v1/whoami");
  EXPECT_TRUE(!answered || answered->status != 200);
  // The worker reached the WorkerService over TLS (heartbeats are RPCs only).
  const std::string id = testing::Submit(d, Spec("max_steps: 400, logging_steps: 50"));
  Job job = testing::WaitFor(d, id, [](const Job& j) {
    return testing::Finished(j) || (j.attempts_size() > 0 && j.attempts(0).last_heartbeat_unix_ms() > 0);
  });
  EXPECT_GT(job.attempts(0).last_heartbeat_unix_ms(), 0) << job.error();
  job = testing::WaitFor(d, id, testing::Finished);
  EXPECT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  // trainer-cli with --tls-ca, and without it.
  const std::string cli = absl::StrCat("TRAINERD_DATA_ROOT=", d.data_root(), " XDG_CONFIG_HOME=", dir / "none",
                                       " TRAINER_TOKEN= ", testing::BuildDir(), "/client/trainer-cli --timeout 3 ",
                                       "--server 127.0.0.1:", d.port());
  auto r = RunCommand(cli + " --tls-ca " + certs("ca.pem") + " whoami");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("admin"));
  EXPECT_EQ(RunCommand(cli + " whoami").exit_code, 5);
}

TEST(Security, ClientCertificatesAreRequiredWithTlsClientCa) {
  TempDir dir, certs_dir;
  Certificates certs(certs_dir);
  Daemon d(dir.path().string(),
           testing::WithHttp({"--tls-cert", certs("server.pem"), "--tls-key", certs("server.key"), "--tls-ca",
                              certs("ca.pem"), "--tls-client-ca", certs("ca.pem")}),
           certs.Client("client"));
  EXPECT_EQ(WhoAmI(certs.Client("client"), d.port(), d.admin_token()), grpc::StatusCode::OK);
  EXPECT_EQ(WhoAmI(certs.Client(), d.port(), d.admin_token()), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(WhoAmI(certs.Client("rogue"), d.port(), d.admin_token()), grpc::StatusCode::UNAVAILABLE);
  // The HTTP side asks for the same client certificates (in the handshake).
  EXPECT_EQ(HttpsWhoAmI(certs, d.http_port(), d.admin_token(), "client"), 200);
  EXPECT_EQ(HttpsWhoAmI(certs, d.http_port(), d.admin_token()), -1);
  EXPECT_EQ(HttpsWhoAmI(certs, d.http_port(), d.admin_token(), "rogue"), -1);
  // Workers hold no certificate: they authenticate with their secret and still report.
  const std::string id = testing::Submit(d, Spec("max_steps: 200, logging_steps: 50"));
  Job job = testing::WaitFor(d, id, testing::Finished);
  EXPECT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  EXPECT_GT(job.attempts(0).last_heartbeat_unix_ms(), 0);
}

TEST(Security, ADataFileSwappedAfterSubmissionIsRefusedByTheWorker) {
  TempDir dir;
  const std::string d = testing::kFashionDir;
  std::filesystem::create_directories(dir / "data");
  std::filesystem::create_directories(dir / "outside");
  std::filesystem::copy_file(d + "/train-images-idx3-ubyte.gz", dir / "outside/secret.gz");
  std::filesystem::create_symlink(d + "/train-images-idx3-ubyte.gz", dir / "data/images.gz");
  Daemon daemon(dir / "root", {"--cpu-slots", "1", "--data-dir", dir / "data", "--data-dir", d});
  As admin(daemon, daemon.admin_token());
  // The first job holds the only slot, so that the second waits in the queue.
  std::string holder;
  ASSERT_TRUE(admin.Submit(&holder).ok());
  testing::WaitFor(daemon, holder, Running);
  trainer::v1::JobSpec spec = Spec("max_steps: 20");
  spec.mutable_data()->mutable_train()->set_path(dir / "data/images.gz");
  spec.mutable_data()->mutable_train()->set_format("idx");
  const std::string id = testing::Submit(daemon, spec);
  ASSERT_FALSE(id.empty()) << "the link points inside the allowed folders at submission";
  // Retargeted outside the roots while the job waits.
  std::filesystem::remove(dir / "data/images.gz");
  std::filesystem::create_symlink(dir / "outside/secret.gz", dir / "data/images.gz");
  EXPECT_EQ(admin.Cancel(holder), grpc::StatusCode::OK);
  const Job job = testing::WaitFor(daemon, id, testing::Finished);
  EXPECT_EQ(job.state(), trainer::v1::FAILED);
  EXPECT_EQ(job.restarts(), 0) << "an invalid spec is not retried";
  EXPECT_THAT(job.error(), HasSubstr("the worker rejected the spec"));
  std::string logs;
  for (const auto& line : testing::Logs(daemon, id, false)) logs += line.text() + "\n";
  EXPECT_THAT(logs, HasSubstr("data.train.path"));
  EXPECT_THAT(logs, Not(HasSubstr("secret")));
}

// The soft and hard limit of `name` in /proc/PID/limits, e.g. "Max processes".
std::string Limit(int pid, const std::string& name) {
  const std::string limits = testing::ReadFile(absl::StrCat("/proc/", pid, "/limits"));
  const size_t at = limits.find(name);
  if (at == std::string::npos) return "";
  std::vector<std::string> fields =
      absl::StrSplit(limits.substr(at + name.size(), limits.find('\n', at) - at - name.size()), ' ', absl::SkipEmpty());
  return fields.size() >= 2 ? fields[0] + " " + fields[1] : "";
}

TEST(Security, WorkersRunUnderMemoryAndProcessLimits) {
  TempDir dir;
  Daemon d(dir.path().string(), {"--max-job-memory", "1G", "--cpu-slots", "1"});
  const std::string id = testing::Submit(d, Spec("max_steps: 100000"));
  const Job job = testing::WaitFor(d, id, Running);
  ASSERT_GT(job.attempts_size(), 0);
  const int pid = job.attempts(0).pid();
  // 2 x 1 GiB + 2 GiB + 128 MiB per thread (a slot has all this machine's threads).
  const int64_t threads = std::max(1u, std::thread::hardware_concurrency());
  const int64_t bytes = (int64_t{4} << 30) + threads * (int64_t{128} << 20);
  EXPECT_EQ(Limit(pid, "Max address space"), absl::StrCat(bytes, " ", bytes));
  const std::vector<std::string> nproc = absl::StrSplit(Limit(pid, "Max processes"), ' ');
  ASSERT_EQ(nproc.size(), 2u);
  EXPECT_EQ(nproc[0], nproc[1]);
  EXPECT_GT(std::atoll(nproc[0].c_str()), 4096);
  EXPECT_LT(std::atoll(nproc[0].c_str()), 4096 + 100000);
  EXPECT_EQ(As(d, d.admin_token()).Cancel(id), grpc::StatusCode::OK);
}

TEST(Security, PlaintextOffLoopbackIsRefused) {
  TempDir dir;
  const std::string trainerd = absl::StrCat(testing::BuildDir(), "/server/trainerd --metrics-port 0 --http-port 0 --data-root ",
                                            dir.path().string(), " --listen 0.0.0.0:", testing::FreePort());
  auto r = RunCommand(trainerd);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("refusing to serve off loopback without TLS"));
  EXPECT_FALSE(std::filesystem::exists(dir / "trainerd.db")) << "a refused start leaves nothing behind";
  r = RunCommand(trainerd + " --tls-cert /no/such.pem --tls-key /no/such.key");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("tls-cert: cannot read /no/such.pem"));
}

}  // namespace
}  // namespace trainerd
