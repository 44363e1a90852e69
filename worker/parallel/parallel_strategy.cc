#include "worker/parallel/parallel_strategy.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "spec/deepspeed_config.h"
#include "spec/fsdp_options.h"

#include "worker/checkpoint/optimizer_state_part.h"
#include "worker/parallel/data_parallel.h"
#include "worker/parallel/fully_sharded.h"
#include "worker/distributed/distributed.h"
#include "worker/parallel/sharded_optimizer.h"

namespace trainerd {

int ParallelStrategy::world_size() const { return distributed_ == nullptr ? 1 : distributed_->world_size(); }

int ParallelStrategy::rank() const { return distributed_ == nullptr ? 0 : distributed_->rank(); }

double ParallelStrategy::ClipGradNorm(double max_norm) {
  return torch::nn::utils::clip_grad_norm_(GradientTensors(), max_norm);
}

void ParallelStrategy::ForEachWholeUnit(const Model& model, const std::function<void(const NamedTensors&)>& fn) {
  WithFullWeights(
      [&] {
        NamedTensors all = model.NamedState();
        for (auto& frozen : model.FrozenState()) all.push_back(std::move(frozen));
        fn(all);
      },
      /*write_back=*/false);
}

std::unique_ptr<Stateful> ParallelStrategy::MakeOptimizerStatePart(const trainer::v1::TrainingArguments& args,
                                                                   torch::optim::Optimizer* optimizer,
                                                                   const torch::Device& device) {
  return std::make_unique<OptimizerStatePart>(&args, optimizer, OptimizedParameters(), distributed(),
                                              ShardsOptimizerState(), device);
}

StrategyMetrics ParallelStrategy::OptimizerStateMetrics(double bytes_on_this_rank) {
  const double mb = 1024.0 * 1024.0;
  StrategyMetrics out = {{"train_optimizer_state_mb", bytes_on_this_rank / mb}};
  if (!ShardsOptimizerState() || distributed_ == nullptr) return out;
  torch::Tensor sum = torch::tensor({bytes_on_this_rank}, torch::kDouble);
  distributed_->AllReduceSum(sum);
  const double total = sum.item<double>();
  spdlog::info("{}: this rank holds {:.2f} MB of optimizer state; unsharded every rank would hold {:.2f} MB "
               "({:.2f} MB saved per rank)",
               display_name(), bytes_on_this_rank / mb, total / mb, (total - bytes_on_this_rank) / mb);
  out["train_optimizer_state_unsharded_mb"] = total / mb;
  return out;
}

StrategyMetrics ParallelStrategy::RunMetrics(double, int64_t) const { return {}; }

std::unique_ptr<ParallelStrategy> CreateParallelStrategy(const trainer::v1::TrainingArguments& args, Model* model,
                                                         Distributed* distributed) {
  const auto bucket_cap = static_cast<int64_t>(args.ddp_bucket_cap_mb() * 1024 * 1024);
  const bool several = distributed != nullptr && distributed->world_size() > 1;
  const int world = several ? distributed->world_size() : 1;
  const FsdpOptions fsdp = ResolveFsdp(args);
  const DeepSpeedConfig deepspeed = ResolveDeepSpeed(args);
  if (deepspeed.enabled) {
    for (const std::string& warning : DeepSpeedNoOpWarnings(args)) spdlog::warn("{}", warning);
    const int64_t batch = args.per_device_train_batch_size() * args.gradient_accumulation_steps() * world;
    if (deepspeed.train_batch_size > 0 && deepspeed.train_batch_size != batch) {
      throw std::invalid_argument(absl::StrCat(
          "training_args.deepspeed.train_batch_size: is ", deepspeed.train_batch_size,
          " and per_device_train_batch_size x gradient_accumulation_steps x ranks is ", batch,
          "; make them agree or write \"auto\""));
    }
    spdlog::info("deepspeed: ZeRO stage {} runs as {}", deepspeed.stage,
                 deepspeed.stage >= 2 ? "fsdp " + fsdp.StrategyName() : deepspeed.stage == 1 ? "optimizer_sharding" : "DDP");
  }
  const std::string kind = ParallelStrategyName(args, world);
  if (fsdp.enabled) {
    for (const std::string& warning : FsdpNoOpWarnings(args)) spdlog::warn("{}", warning);
    // One rank shards nothing, but keeps fsdp's checkpoint format: a run of N ranks
    // resumes on one, and one rank consolidates a sharded checkpoint.
    return std::make_unique<FullyShardedDataParallel>(model, several ? distributed : nullptr, fsdp);
  }
  if (kind == "zero1") return std::make_unique<ShardedOptimizer>(model, distributed, bucket_cap);
  return std::make_unique<DataParallel>(model, several ? distributed : nullptr, bucket_cap);
}

}  // namespace trainerd
