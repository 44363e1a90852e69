// How trainerd reads a --listen style address ("host:port", "[::1]:port").
#ifndef TRAINERD_COMMON_LISTEN_ADDRESS_H_
#define TRAINERD_COMMON_LISTEN_ADDRESS_H_

#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace trainerd {

// The host of `listen` ("host:port", "[::1]:port"; a bare host is all host), without
// IPv6 brackets.
inline std::string ListenHost(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  std::string host = colon == std::string::npos ? listen : listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host;
}

// `listen` as (host, port); nullopt when it has no ":port" in 0..65535.
inline std::optional<std::pair<std::string, int>> SplitListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return std::nullopt;
  }
  return std::make_pair(ListenHost(listen), port);
}

// Whether `listen` ("host:port") binds only the loopback interface.
inline bool IsLoopbackListen(const std::string& listen) {
  const std::string host = ListenHost(listen);
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// INVALID_ARGUMENT when `flag` (--listen, --http-listen) would serve tokens in clear
// text off loopback: without TLS and without --allow-plaintext.
inline absl::Status CheckPlaintext(const char* flag, const std::string& listen, bool tls, bool allow_plaintext) {
  if (tls || allow_plaintext || IsLoopbackListen(listen)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(flag, " ", listen,
                                                 ": refusing to serve off loopback without TLS (give --tls-cert and ",
                                                 "--tls-key, or --allow-plaintext to send tokens in clear text)"));
}

}  // namespace trainerd

#endif  // TRAINERD_COMMON_LISTEN_ADDRESS_H_
