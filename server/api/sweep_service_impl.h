// The gRPC SweepService: each handler hands its call to SweepOperations and maps the
// answer to gRPC.
#ifndef TRAINERD_SERVER_API_SWEEP_SERVICE_IMPL_H_
#define TRAINERD_SERVER_API_SWEEP_SERVICE_IMPL_H_

#include <utility>

#include "server/api/status_util.h"
#include "server/api/sweep_operations.h"
#include "trainer/v1/sweep_service.grpc.pb.h"

namespace trainerd {

class SweepServiceImpl final : public trainer::v1::SweepService::Service {
 public:
  // `operations` outlives this object; `observe` (optional) is told of each call.
  SweepServiceImpl(const SweepOperations* operations, RpcObserver observe)
      : operations_(operations), observe_(std::move(observe)) {}

  grpc::Status SubmitSweep(grpc::ServerContext* context, const trainer::v1::SubmitSweepRequest* request,
                           trainer::v1::SubmitSweepResponse* response) override {
    return ObservedCall(observe_, "SubmitSweep", [&] {
      return Answer(operations_->SubmitSweep(CallOriginOf(*context), *request), response);
    });
  }
  grpc::Status GetSweep(grpc::ServerContext* context, const trainer::v1::GetSweepRequest* request,
                        trainer::v1::Sweep* response) override {
    return ObservedCall(observe_, "GetSweep",
                        [&] { return Answer(operations_->GetSweep(CallOriginOf(*context), *request), response); });
  }
  grpc::Status ListSweeps(grpc::ServerContext* context, const trainer::v1::ListSweepsRequest* request,
                          trainer::v1::ListSweepsResponse* response) override {
    return ObservedCall(observe_, "ListSweeps",
                        [&] { return Answer(operations_->ListSweeps(CallOriginOf(*context), *request), response); });
  }
  grpc::Status CancelSweep(grpc::ServerContext* context, const trainer::v1::CancelSweepRequest* request,
                           trainer::v1::Sweep* response) override {
    return ObservedCall(observe_, "CancelSweep",
                        [&] { return Answer(operations_->CancelSweep(CallOriginOf(*context), *request), response); });
  }

 private:
  const SweepOperations* const operations_;
  const RpcObserver observe_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_API_SWEEP_SERVICE_IMPL_H_
