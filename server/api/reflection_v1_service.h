// ReflectionV1Service: grpc.reflection.v1.ServerReflection, which newer clients
// (grpcurl, Postman, grpc_cli) ask first; gRPC 1.51's plugin serves only v1alpha, which
// trainerd keeps serving too. It answers from the process's generated descriptor pool,
// as the v1alpha plugin does.
#ifndef TRAINERD_SERVER_API_REFLECTION_V1_SERVICE_H_
#define TRAINERD_SERVER_API_REFLECTION_V1_SERVICE_H_

#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"

namespace trainerd {

class ReflectionV1Service final : public grpc::reflection::v1::ServerReflection::Service {
 public:
  // `services`: the full names list_services answers with.
  explicit ReflectionV1Service(std::vector<std::string> services) : services_(std::move(services)) {}

  grpc::Status ServerReflectionInfo(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<grpc::reflection::v1::ServerReflectionResponse,
                               grpc::reflection::v1::ServerReflectionRequest>* stream) override;

 private:
  std::vector<std::string> services_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_API_REFLECTION_V1_SERVICE_H_
