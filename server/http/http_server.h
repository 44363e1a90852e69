// HttpServer: trainerd's second front door, for browsers and scripts that speak HTTP.
// It serves the web console (static files built into the binary: web_assets.h) and the
// JSON API (json_api.h) on cpp-httplib, with the gRPC side's TLS files and its refusal
// to serve plaintext off loopback. Every response carries a strict
// Content-Security-Policy (scripts and styles from this origin only, nothing inline,
// no other origin reachable), X-Content-Type-Options, Referrer-Policy and
// X-Frame-Options; request bodies are bounded.
//
// Threads: one listening thread and a pool of connection threads (cpp-httplib's). A
// follow (server-sent events) holds one pool thread while it lasts, so their number is
// bounded (HttpOptions::max_followers) below the pool's size: plain calls always find a
// thread. Stop() ends the follows, then the listener, and joins every thread.
#ifndef TRAINERD_SERVER_HTTP_HTTP_SERVER_H_
#define TRAINERD_SERVER_HTTP_HTTP_SERVER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/tls_credentials.h"

namespace httplib {
class Server;
}

namespace trainerd {

class JobOperations;
class JobRegistry;
class JsonApi;
class SweepOperations;

struct HttpOptions {
  std::string listen = "127.0.0.1:8080";    // "host:port"; port 0 picks a free one
  TlsServerFiles tls;                       // empty cert: plaintext (loopback only)
  bool allow_plaintext = false;             // plaintext off loopback (tokens in clear text)
  size_t max_body_bytes = size_t{4} << 20;  // larger request bodies get 413
  // A browser on a job's page follows two streams (its changes, its logs): 128 streams
  // are 64 such pages, with 32 threads left for plain calls.
  int threads = 160;        // connection threads
  int max_followers = 128;  // concurrent event streams (then 503)
};

class HttpServer {
 public:
  // Checks the options, binds `options.listen` and starts serving. Every pointer
  // outlives the server.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpOptions options, const JobOperations* operations,
                                                           const SweepOperations* sweeps,
                                                           JobRegistry* registry);
  // Stop()s.
  ~HttpServer();

  int port() const { return port_; }
  // Ends every event stream (the pages reconnect), stops listening and joins the
  // threads. Idempotent.
  void Stop();
  // Event streams open now.
  size_t follower_count() const;

 private:
  HttpServer() = default;

  std::unique_ptr<httplib::Server> http_;
  std::unique_ptr<JsonApi> api_;
  std::thread listener_;
  int port_ = 0;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_HTTP_HTTP_SERVER_H_
