#include "worker/distributed/distributed.h"

#include <cstdlib>
#include <map>

#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "protocol/worker_environment.h"

namespace trainerd {
namespace {

// Reads an integer variable; `fallback` when unset.
absl::StatusOr<int> IntFromEnvironment(const char* name, int fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  int parsed = 0;
  if (!absl::SimpleAtoi(value, &parsed) || parsed < 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": \"", value, "\" is not a non-negative integer"));
  }
  return parsed;
}

}  // namespace

absl::StatusOr<DistributedConfig> DistributedConfigFromEnvironment() {
  DistributedConfig c;
  absl::StatusOr<int> world = IntFromEnvironment(kEnvWorldSize, 1);
  absl::StatusOr<int> rank = IntFromEnvironment(kEnvRank, 0);
  if (!world.ok()) return world.status();
  if (!rank.ok()) return rank.status();
  absl::StatusOr<int> local_rank = IntFromEnvironment(kEnvLocalRank, *rank);
  absl::StatusOr<int> port = IntFromEnvironment(kEnvMasterPort, 29500);
  if (!local_rank.ok()) return local_rank.status();
  if (!port.ok()) return port.status();
  if (*world < 1) return absl::InvalidArgumentError("WORLD_SIZE: must be >= 1");
  if (*rank >= *world) {
    return absl::InvalidArgumentError(absl::StrCat("RANK: ", *rank, " is not below WORLD_SIZE ", *world));
  }
  if (*port == 0 || *port > 65535) return absl::InvalidArgumentError("MASTER_PORT: must be in 1..65535");
  c.world_size = *world;
  c.rank = *rank;
  c.local_rank = *local_rank;
  c.store_port = *port;
  if (const char* host = std::getenv(kEnvMasterAddr); host != nullptr && *host != '\0') c.store_host = host;
  return c;
}

namespace {

c10::intrusive_ptr<c10d::ProcessGroup> MakeGlooGroup(const c10::intrusive_ptr<c10d::Store>& store,
                                                     const DistributedConfig& config) {
  auto options = c10d::ProcessGroupGloo::Options::create(config.timeout);
  // Gloo connects to the other ranks from the address the store is reached at:
  // loopback stays loopback; across machines this host's name resolves to its own.
  const bool loopback = config.store_host == "127.0.0.1" || config.store_host == "localhost";
  options->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                      : c10d::ProcessGroupGloo::createDefaultDevice());
  options->threads = 2;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, config.rank, config.world_size, options);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Distributed>> Distributed::NewCpuGroup(const std::string& name) const {
  try {
    auto store = c10::make_intrusive<c10d::PrefixStore>(name, store_);
    return std::unique_ptr<Distributed>(
        new Distributed(config_, "gloo", torch::kCPU, store_, MakeGlooGroup(store, config_)));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("rank ", config_.rank, ": cannot build the ", name,
                                               " group of ", config_.world_size, " ranks: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Distributed>> Distributed::Connect(const DistributedConfig& config,
                                                                  const torch::Device& device) {
  const bool use_cuda = device.is_cuda();
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(config.store_port);
    store_options.isServer = config.rank == 0;
    store_options.numWorkers = config.world_size;
    store_options.waitWorkers = true;
    store_options.timeout = config.timeout;
    auto tcp_store = c10::make_intrusive<c10d::TCPStore>(config.store_host, store_options);
    // A prefix per process group, as torch.distributed does, leaves room for more groups.
    auto store = c10::make_intrusive<c10d::PrefixStore>("default_pg", tcp_store);

    c10::intrusive_ptr<c10d::ProcessGroup> group;
    std::string backend;
    if (use_cuda) {
#ifdef USE_C10D_NCCL
      // Without async error handling a failed or hung NCCL collective never returns;
      // with it the timeout below aborts the communicator and the rank fails.
      setenv("NCCL_ASYNC_ERROR_HANDLING", "1", /*overwrite=*/0);
      c10::cuda::set_device(device.index());
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = config.timeout;
      group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, config.rank, config.world_size, options);
      backend = "nccl";
#else
      return absl::FailedPreconditionError(
          "this trainer-worker was built against a LibTorch without NCCL: it cannot train on GPUs across ranks");
#endif
    } else {
      group = MakeGlooGroup(store, config);
      backend = "gloo";
    }
    return std::unique_ptr<Distributed>(new Distributed(config, backend, device, tcp_store, group));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("rank ", config.rank, " of ", config.world_size,
                                               ": cannot join the job's store at ", config.store_host, ":",
                                               config.store_port, " (waited up to ", config.timeout.count() / 1000,
                                               "s for the other ranks, see ddp_timeout): ", e.what()));
  }
}

Distributed::Distributed(DistributedConfig config, std::string backend, torch::Device device,
                         c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<c10d::ProcessGroup> group)
    : config_(std::move(config)),
      backend_(std::move(backend)),
      device_(device),
      store_(std::move(store)),
      group_(std::move(group)) {}

Distributed::~Distributed() = default;

void Distributed::Wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    throw std::runtime_error(absl::StrCat(
        what, " across ", config_.world_size, " ranks failed on rank ", config_.rank,
        " (another rank died, hung past ddp_timeout, or the network failed): ", e.what()));
  }
}

void Distributed::Broadcast(const std::vector<torch::Tensor>& tensors, int root) {
  // One message per dtype: a flat copy costs far less than a round trip per tensor.
  std::map<c10::ScalarType, std::vector<torch::Tensor>> by_dtype;
  for (const torch::Tensor& t : tensors) by_dtype[t.scalar_type()].push_back(t);
  torch::NoGradGuard no_grad;
  for (auto& [dtype, group] : by_dtype) {
    std::vector<torch::Tensor> flat_parts;
    for (const torch::Tensor& t : group) flat_parts.push_back(t.reshape({-1}));
    std::vector<torch::Tensor> message = {torch::cat(flat_parts).to(device_)};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    Wait(group_->broadcast(message, options), "broadcast");
    int64_t offset = 0;
    for (const torch::Tensor& t : group) {
      t.copy_(message[0].narrow(0, offset, t.numel()).view_as(t));
      offset += t.numel();
    }
  }
}

c10::intrusive_ptr<c10d::Work> Distributed::AllReduceSumAsync(torch::Tensor& tensor) {
  std::vector<torch::Tensor> tensors = {tensor};
  return group_->allreduce(tensors);
}

void Distributed::AllReduceSum(torch::Tensor& tensor) {
  if (tensor.device() == device_) {
    Wait(AllReduceSumAsync(tensor), "all-reduce");
    return;
  }
  torch::Tensor on_device = tensor.to(device_);
  Wait(AllReduceSumAsync(on_device), "all-reduce");
  tensor.copy_(on_device);
}

std::vector<torch::Tensor> Distributed::AllGather(const torch::Tensor& tensor) {
  std::vector<torch::Tensor> input = {tensor.to(device_).contiguous()};
  std::vector<std::vector<torch::Tensor>> output(1);
  for (int r = 0; r < config_.world_size; ++r) output[0].push_back(torch::empty_like(input[0]));
  Wait(group_->allgather(output, input), "all-gather");
  for (torch::Tensor& t : output[0]) t = t.to(tensor.device());
  return output[0];
}

std::vector<std::string> Distributed::AllGatherBytes(const std::string& bytes) {
  std::vector<torch::Tensor> sizes = AllGather(torch::tensor({static_cast<int64_t>(bytes.size())}));
  int64_t largest = 0;
  for (const torch::Tensor& s : sizes) largest = std::max(largest, s.item<int64_t>());
  torch::Tensor padded = torch::zeros({std::max<int64_t>(largest, 1)}, torch::kUInt8);
  std::memcpy(padded.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  std::vector<torch::Tensor> gathered = AllGather(padded);
  std::vector<std::string> out;
  for (int r = 0; r < config_.world_size; ++r) {
    out.emplace_back(reinterpret_cast<const char*>(gathered[r].data_ptr<uint8_t>()), sizes[r].item<int64_t>());
  }
  return out;
}

void Distributed::AllGatherInto(const torch::Tensor& shard, torch::Tensor& full) {
  torch::NoGradGuard no_grad;
  const int64_t n = shard.numel();
  if (full.numel() != n * config_.world_size || !full.is_contiguous()) {
    throw std::logic_error("AllGatherInto: the full buffer is not world_size contiguous slices of the shard");
  }
  std::vector<torch::Tensor> input = {shard.reshape({-1}).to(device_)};
  torch::Tensor target = full.device() == device_ ? full : torch::empty_like(full, full.options().device(device_));
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int r = 0; r < config_.world_size; ++r) outputs[0].push_back(target.narrow(0, r * n, n));
  Wait(group_->allgather(outputs, input), "all-gather");
  if (!target.is_same(full)) full.copy_(target);
}

c10::intrusive_ptr<c10d::Work> Distributed::AllGatherIntoAsync(const torch::Tensor& shard, torch::Tensor& full) {
  if (full.device() != device_ || shard.device() != device_) {
    AllGatherInto(shard, full);
    return {};
  }
  torch::NoGradGuard no_grad;
  const int64_t n = shard.numel();
  if (full.numel() != n * config_.world_size || !full.is_contiguous()) {
    throw std::logic_error("AllGatherIntoAsync: the full buffer is not world_size contiguous slices of the shard");
  }
  std::vector<torch::Tensor> input = {shard.reshape({-1})};
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int r = 0; r < config_.world_size; ++r) outputs[0].push_back(full.narrow(0, r * n, n));
  return group_->allgather(outputs, input);
}

void Distributed::ReduceScatterSum(torch::Tensor& full, torch::Tensor& shard) {
  torch::NoGradGuard no_grad;
  const int64_t n = shard.numel();
  if (full.numel() != n * config_.world_size || !full.is_contiguous()) {
    throw std::logic_error("ReduceScatterSum: the full buffer is not world_size contiguous slices of the shard");
  }
  if (backend_ == "nccl") {
    torch::Tensor source = full.to(device_);
    std::vector<torch::Tensor> output = {torch::empty({n}, source.options())};
    std::vector<std::vector<torch::Tensor>> inputs(1);
    for (int r = 0; r < config_.world_size; ++r) inputs[0].push_back(source.narrow(0, r * n, n));
    Wait(group_->reduce_scatter(output, inputs), "reduce-scatter");
    shard.copy_(output[0].view(shard.sizes()));
    return;
  }
  AllReduceSum(full);
  shard.copy_(full.narrow(0, static_cast<int64_t>(config_.rank) * n, n).view(shard.sizes()));
}

void Distributed::Barrier() { Wait(group_->barrier(), "barrier"); }

double MeanOverRanks(Distributed* distributed, double value) {
  if (distributed == nullptr || distributed->world_size() == 1) return value;
  torch::Tensor t = torch::tensor({value}, torch::kDouble);
  distributed->AllReduceSum(t);
  return t.item<double>() / distributed->world_size();
}

}  // namespace trainerd
