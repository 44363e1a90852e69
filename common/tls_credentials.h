// gRPC credentials from PEM files, for every side of trainerd's connections: trainerd's
// listening port, trainer-cli and the client library, and workers reaching trainerd. An empty CA means plaintext.
#ifndef TRAINERD_COMMON_TLS_CREDENTIALS_H_
#define TRAINERD_COMMON_TLS_CREDENTIALS_H_

#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/status/statusor.h"

namespace trainerd {

struct TlsClientFiles {
  std::string ca;    // the CA that signed the server's certificate; empty: plaintext
  std::string cert;  // optional client certificate (for a trainerd with --tls-client-ca)
  std::string key;   // its key
};

// Channel credentials that verify the server's certificate against `files.ca` (and its
// name against the address dialled). An unreadable file is named in the error.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(const TlsClientFiles& files);

struct TlsServerFiles {
  std::string cert;       // empty: plaintext
  std::string key;
  std::string client_ca;  // non-empty: client certificates are verified against it
};

// Server credentials for `files`. With a client CA, a certificate that CA did not sign
// is refused in the handshake; a client without any certificate still connects (workers
// have none) and JobService refuses it (AccessControl).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsServerFiles& files);

}  // namespace trainerd

#endif  // TRAINERD_COMMON_TLS_CREDENTIALS_H_
