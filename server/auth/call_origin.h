// CallOrigin: what trainerd knows of a call before it trusts it, whatever the transport
// (gRPC metadata, HTTP headers): where it came from and the credentials it carried.
#ifndef TRAINERD_SERVER_AUTH_CALL_ORIGIN_H_
#define TRAINERD_SERVER_AUTH_CALL_ORIGIN_H_

#include <optional>
#include <string>

namespace trainerd {

struct CallOrigin {
  // The client's address as the transport names it ("ipv4:127.0.0.1:40312" for gRPC,
  // "http:127.0.0.1:40312" for the HTTP API): written to the audit log.
  std::string peer;
  // The "Bearer TOKEN" value the call carried (gRPC's authorization metadata, HTTP's
  // Authorization header); nullopt when it carried none.
  std::optional<std::string> authorization;
  // Whether the client presented a certificate the --tls-client-ca signed.
  bool peer_certificate_verified = false;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_AUTH_CALL_ORIGIN_H_
