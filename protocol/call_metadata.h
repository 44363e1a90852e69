// The gRPC metadata keys of trainerd's services: who sets each and who reads it.
#ifndef TRAINERD_PROTOCOL_CALL_METADATA_H_
#define TRAINERD_PROTOCOL_CALL_METADATA_H_

namespace trainerd {

// JobService: "Bearer TOKEN" (trainer-cli and the client library; server/access_control).
inline constexpr char kAuthorizationMetadata[] = "authorization";
// WorkerService: the attempt's secret (trainer-worker; server/worker_service_impl).
inline constexpr char kWorkerSecretMetadata[] = "x-trainerd-worker-secret";

}  // namespace trainerd

#endif  // TRAINERD_PROTOCOL_CALL_METADATA_H_
