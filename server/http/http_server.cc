#include "server/http/http_server.h"

#include <malloc.h>

#include <memory>
#include <mutex>
#include <optional>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/listen_address.h"
#include "server/api/job_operations.h"
#include "server/http/gzip_body.h"
#include "server/http/json_api.h"
#include "server/http/web_assets.h"

namespace trainerd {
namespace {

// The page loads its script, style and chart library from this origin only, talks only
// to this origin's API, and may not be framed; nothing inline runs.
constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

httplib::Headers SecurityHeaders() {
  return {{"Content-Security-Policy", kContentSecurityPolicy},
          {"X-Content-Type-Options", "nosniff"},
          {"Referrer-Policy", "no-referrer"},
          {"X-Frame-Options", "DENY"},
          {"Cross-Origin-Opener-Policy", "same-origin"},
          {"Cross-Origin-Resource-Policy", "same-origin"}};
}

// The web console's files; "/" is its page. The scripts (application/javascript, which
// cpp-httplib leaves alone) go out gzipped to a client that takes it, compressed once,
// on the first such request; the page and its style are small, and cpp-httplib
// compresses text/ types itself.
void ServeAssets(httplib::Server* http) {
  struct Gzipped {
    std::once_flag once;
    std::optional<std::string> body;
  };
  for (const WebAsset& asset : WebAssets()) {
    const std::string path = asset.path == "/index.html" ? "/" : std::string(asset.path);
    const bool compress = asset.content_type.rfind("application/", 0) == 0;
    auto gzipped = std::make_shared<Gzipped>();
    http->Get(path, [&asset, compress, gzipped](const httplib::Request& request, httplib::Response& response) {
      response.set_header("Cache-Control", "no-cache");
      const std::string type(asset.content_type);
      if (compress && AcceptsGzip(request.get_header_value("Accept-Encoding"))) {
        std::call_once(gzipped->once, [&] { gzipped->body = Gzip(asset.data, 9); });
        if (gzipped->body) {
          response.set_content(*gzipped->body, type);
          response.set_header("Content-Encoding", "gzip");
          response.set_header("Vary", "Accept-Encoding");
          return;
        }
      }
      response.set_content(asset.data.data(), asset.data.size(), type);
    });
  }
}

// What happens to every response: gzip, the error shape, memory handed back.
void InstallResponseHooks(httplib::Server* server) {
  httplib::Server& http = *server;
  // Large JSON answers go out gzipped when the client takes it (gzip_body.h): a
  // 100,000-point GetMetrics is 15 MB as text and about a tenth of that compressed.
  http.set_post_routing_handler([](const httplib::Request& request, httplib::Response& response) {
    if (response.body.size() < 1024 || response.get_header_value("Content-Type").rfind("application/json", 0) != 0 ||
        !AcceptsGzip(request.get_header_value("Accept-Encoding"))) {
      return;
    }
    // Made per request: fast for the large ones.
    if (std::optional<std::string> gzipped = Gzip(response.body, response.body.size() > (1 << 20) ? 1 : 6)) {
      response.body = std::move(*gzipped);
      // cpp-httplib has counted the body as it was set.
      response.headers.erase("Content-Length");
      response.set_header("Content-Length", std::to_string(response.body.size()));
      response.set_header("Content-Encoding", "gzip");
      response.set_header("Vary", "Accept-Encoding");
    }
  });
  // Called once a response is written. A large one (a long GetMetrics) left its working
  // memory free in the arena of the pool thread that built it, where glibc keeps it;
  // with 160 threads that grew trainerd by ~130 MB per thread that served one. Hand it
  // back to the system.
  http.set_logger([](const httplib::Request&, const httplib::Response& response) {
    if (response.body.size() > (size_t{1} << 20)) malloc_trim(0);
  });
  // Unknown routes, oversized bodies and the like: the API's error shape, not HTML.
  http.set_error_handler([](const httplib::Request&, httplib::Response& response) {
    if (!response.body.empty()) return;
    const int status = response.status;
    SendError(response, status == 404   ? absl::NotFoundError("no such route")
                        : status == 413 ? absl::InvalidArgumentError("request body too large")
                        : status == 405 ? absl::UnimplementedError("method not allowed here")
                                        : absl::InvalidArgumentError(absl::StrCat("HTTP ", status)));
    response.status = status;  // the transport's own (413 stays 413)
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
    SendError(response, absl::InternalError("the request could not be handled"));
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpOptions options, const JobOperations* operations,
                                                              const SweepOperations* sweeps,
                                                              JobRegistry* registry) {
  const auto host_port = SplitListen(options.listen);
  if (!host_port)
    return absl::InvalidArgumentError(absl::StrCat("--http-listen ", options.listen, ": expected HOST:PORT"));
  if (absl::Status s =
          CheckPlaintext("--http-listen", options.listen, !options.tls.cert.empty(), options.allow_plaintext);
      !s.ok()) {
    return s;
  }
  if (options.max_followers >= options.threads) {
    return absl::InvalidArgumentError("http: max_followers must leave connection threads for plain calls");
  }
  std::unique_ptr<HttpServer> server(new HttpServer());
  if (options.tls.cert.empty()) {
    server->http_ = std::make_unique<httplib::Server>();
  } else {
    // With a client CA, the handshake asks for a certificate it signed (as gRPC does).
    server->http_ =
        std::make_unique<httplib::SSLServer>(options.tls.cert.c_str(), options.tls.key.c_str(),
                                             options.tls.client_ca.empty() ? nullptr : options.tls.client_ca.c_str());
  }
  httplib::Server& http = *server->http_;
  if (!http.is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat("--http-listen ", options.listen,
                                                   ": cannot use the TLS certificate and key (--tls-cert, --tls-key)"));
  }
  const int threads = options.threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(options.max_body_bytes);
  http.set_default_headers(SecurityHeaders());
  http.set_read_timeout(30, 0);
  http.set_keep_alive_timeout(5);
  server->api_ = std::make_unique<JsonApi>(operations, sweeps, registry, options.max_followers);
  server->api_->Register(&http);
  ServeAssets(&http);
  InstallResponseHooks(&http);
  const auto& [host, port] = *host_port;
  if (port == 0) {
    server->port_ = http.bind_to_any_port(host);
  } else if (http.bind_to_port(host, port)) {
    server->port_ = port;
  }
  if (server->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("--http-listen ", options.listen, ": cannot listen there"));
  }
  server->listener_ = std::thread([&http] { http.listen_after_bind(); });
  spdlog::info("web console and JSON API on {}://{}:{}/", options.tls.cert.empty() ? "http" : "https", host,
               server->port_);
  return server;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (!listener_.joinable()) return;
  api_->StopFollowers();
  http_->stop();
  listener_.join();
}

size_t HttpServer::follower_count() const { return api_->follower_count(); }

}  // namespace trainerd
