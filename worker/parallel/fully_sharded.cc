#include "worker/parallel/fully_sharded.h"

#include <cmath>
#include <map>
#include <stdexcept>
#include <tuple>
#include <utility>

#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "worker/distributed/distributed.h"
#include "worker/optim/optimizer_factory.h"
#include "worker/parallel/sharded_state_parts.h"

namespace trainerd {

FullyShardedDataParallel::FullyShardedDataParallel(Model* model, Distributed* distributed, const FsdpOptions& options)
    : ParallelStrategy(distributed), model_(model), options_(options) {
  if (options_.offload) {
    const NamedTensors params = model_->NamedParameters();
    if (!params.empty() && params.front().second.is_cuda()) {
      throw std::invalid_argument("training_args.fsdp: offload to CPU memory is not available on GPUs yet");
    }
    spdlog::info("fsdp offload: training on the CPU keeps every shard in CPU memory already");
  }
  BuildUnits();
  model_->SetBlockWrapper(
      [this](int64_t index, const BlockFunction& forward, const torch::Tensor& x) { return RunBlock(index, forward, x); });
}

FullyShardedDataParallel::~FullyShardedDataParallel() {
  model_->SetBlockWrapper(nullptr);
  // The hooks refer to this object; the parameters hold their accumulators weakly.
  accumulators_.clear();
}

void FullyShardedDataParallel::BuildUnits() {
  const std::vector<std::string> prefixes = model_->BlockPrefixes();
  units_.resize(1 + prefixes.size());
  units_[0].name = "root";
  for (size_t i = 0; i < prefixes.size(); ++i) {
    units_[1 + i].name = prefixes[i];
    units_[1 + i].kept_whole = !options_.reshard_after_forward;
  }
  // Each unit's parameters by whether they train, dtype and weight-decay class, in the
  // model's order (the same on every rank). Trained flats come first in each unit.
  std::vector<std::map<std::tuple<bool, int, bool>, NamedTensors>> groups(units_.size());
  NamedTensors params = model_->NamedParameters();
  for (auto& frozen : model_->FrozenState()) params.push_back(std::move(frozen));
  for (const auto& [name, p] : params) {
    size_t unit = 0;
    for (size_t i = 0; i < prefixes.size() && unit == 0; ++i) {
      if (absl::StartsWith(name, prefixes[i])) unit = 1 + i;
    }
    const bool trains = p.requires_grad();
    groups[unit][{!trains, static_cast<int>(p.scalar_type()), trains && UsesWeightDecay(name, p)}].emplace_back(name, p);
  }
  // A model built with deferred weights (cpu_ram_efficient_loading): each rank reads
  // its slices of the blocks from the folder here, and never holds them whole before.
  const DeferredWeights* deferred = model_->deferred_weights();
  for (size_t u = 0; u < units_.size(); ++u) {
    for (auto& [kind, params] : groups[u]) {
      const bool trains = !std::get<0>(kind);
      units_[u].flats.push_back(std::make_unique<FlatParameter>(std::move(params), std::get<2>(kind), trains,
                                                                world_size(), rank(), deferred));
    }
    for (size_t k = 0; k < units_[u].flats.size(); ++k) {
      FlatParameter* flat = units_[u].flats[k].get();
      units_[u].frozen = units_[u].frozen || !flat->trainable();
      if (flat->trainable()) trained_.emplace_back(absl::StrCat("fsdp.", units_[u].name, ".flat", k), flat);
    }
    if (units_[u].kept_whole) {
      Gather(units_[u]);  // the flats that read slices
    } else {
      Release(units_[u]);
    }
  }
  if (deferred != nullptr) model_->set_deferred_weights(nullptr);  // the files close
}

std::string FullyShardedDataParallel::Describe(int64_t total_batch_size) const {
  int64_t all = 0, mine = 0, frozen_all = 0, frozen_mine = 0;
  for (const Unit& unit : units_) {
    for (const auto& flat : unit.flats) {
      (flat->trainable() ? all : frozen_all) += flat->numel();
      (flat->trainable() ? mine : frozen_mine) += flat->shard_numel();
    }
  }
  return absl::StrCat("Fully sharded data parallel (", name(), "): ", world_size(), " rank(s) over ",
                      distributed() == nullptr ? "no network" : distributed()->backend(),
                      ", total batch size = ", total_batch_size, ", ", units_.size(),
                      " unit(s); this rank's shards hold ", mine, " of ", all, " trained parameters",
                      frozen_all == 0 ? "" : absl::StrCat(" and ", frozen_mine, " of ", frozen_all, " frozen ones"));
}

NamedTensors FullyShardedDataParallel::OptimizedParameters() {
  NamedTensors shards;
  for (const auto& [name, flat] : Flats()) shards.emplace_back(name, flat->shard());
  return shards;
}

std::unique_ptr<Stateful> FullyShardedDataParallel::MakeOptimizerStatePart(const trainer::v1::TrainingArguments&,
                                                                           torch::optim::Optimizer* optimizer,
                                                                           const torch::Device&) {
  return std::make_unique<ShardedOptimizerPart>(Flats(), optimizer, rank(), world_size());
}

std::unique_ptr<Stateful> FullyShardedDataParallel::MakeShardedWeightsPart() {
  if (!options_.sharded_state_dict) return nullptr;
  return std::make_unique<ShardedWeightsPart>(Flats(), rank(), world_size(), [this] { ShardsLoaded(); });
}

void FullyShardedDataParallel::ShardsLoaded() {
  for (Unit& unit : units_) {
    for (auto& flat : unit.flats) {
      if (flat->gathered()) flat->Gather(distributed());
    }
  }
}

std::vector<torch::Tensor> FullyShardedDataParallel::GradientTensors() {
  std::vector<torch::Tensor> shards;
  for (auto& [name, shard] : OptimizedParameters()) shards.push_back(shard);
  return shards;
}

void FullyShardedDataParallel::Gather(Unit& unit) {
  for (auto& flat : unit.flats) {
    if (!flat->gathered()) flat->Gather(distributed());
  }
}

void FullyShardedDataParallel::Release(Unit& unit) {
  for (auto& flat : unit.flats) flat->Release();
}

void FullyShardedDataParallel::Prefetch(size_t u) {
  if (u == 0 || u >= units_.size() || units_[u].kept_whole) return;
  for (auto& flat : units_[u].flats) flat->Prefetch(distributed());
}

torch::Tensor FullyShardedDataParallel::RunBlock(int64_t index, const BlockFunction& forward, const torch::Tensor& x) {
  const size_t u = 1 + static_cast<size_t>(index);
  Unit& unit = units_.at(u);
  if (unit.kept_whole) return forward(x);
  Gather(unit);
  // The next block's weights travel while this one computes (forward_prefetch).
  if (options_.forward_prefetch) Prefetch(u + 1);
  torch::Tensor out = forward(x);
  // Autograd kept views of the weights' memory; backward gathers them again first, and
  // (backward_prefetch) starts on the block before it, which backward reaches next.
  Release(unit);
  if (out.requires_grad()) {
    out.register_hook([this, u](const torch::Tensor& grad) {
      Gather(units_[u]);
      if (options_.backward_prefetch) Prefetch(u - 1);
      return grad;
    });
  }
  // A unit with frozen weights is released once the gradient of its input is complete
  // (every op of the unit has run backward); when nothing needs that gradient (the
  // first block of a LoRA job), at the end of backward (FinishGradients).
  if (unit.frozen && x.requires_grad()) {
    x.register_hook([this, u](const torch::Tensor& grad) {
      Release(units_[u]);
      return grad;
    });
  }
  return out;
}

void FullyShardedDataParallel::PrepareBackward() {
  if (!accumulators_.empty()) return;
  for (size_t u = 0; u < units_.size(); ++u) {
    for (auto& flat : units_[u].flats) {
      if (!flat->trainable()) continue;  // no gradients to wait for
      for (const auto& [name, p] : flat->params()) {
        std::shared_ptr<torch::autograd::Node> accumulator = torch::autograd::impl::grad_accumulator(p);
        accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
            [this, u](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
              OnGradientReady(u);
              return outputs;
            }));
        accumulators_.push_back(std::move(accumulator));
      }
    }
  }
}

void FullyShardedDataParallel::BeginMicroBatch(bool last) {
  sync_ = last;
  for (Unit& unit : units_) {
    unit.pending = 0;
    for (const auto& flat : unit.flats) {
      if (flat->trainable()) unit.pending += static_cast<int64_t>(flat->params().size());
    }
    unit.reduced = false;
  }
}

void FullyShardedDataParallel::OnGradientReady(size_t u) {
  Unit& unit = units_[u];
  if (--unit.pending == 0) FinishUnitBackward(unit);
}

void FullyShardedDataParallel::FinishUnitBackward(Unit& unit) {
  if (sync_) {
    for (auto& flat : unit.flats) {
      if (flat->trainable()) flat->ReduceGradients(distributed());
    }
    unit.reduced = true;
  }
  if (!unit.kept_whole && !unit.frozen) Release(unit);
}

void FullyShardedDataParallel::FinishGradients() {
  // Units some of whose parameters got no gradient in this step never finished: they
  // reduce what they have (zeros for the rest), in unit order on every rank. A unit
  // that trains nothing was gathered for backward to pass through it; it goes now.
  for (Unit& unit : units_) {
    if (!unit.reduced) {
      for (auto& flat : unit.flats) {
        if (flat->trainable()) flat->ReduceGradients(distributed());
      }
      unit.reduced = true;
    }
    if (!unit.kept_whole) Release(unit);
  }
}

double FullyShardedDataParallel::ClipGradNorm(double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  torch::Tensor squares = torch::zeros({1}, torch::kDouble);
  for (const torch::Tensor& shard : GradientTensors()) {
    if (!shard.grad().defined()) continue;
    grads.push_back(shard.grad());
    squares += shard.grad().to(torch::kDouble).pow(2).sum().cpu();
  }
  if (distributed() != nullptr) distributed()->AllReduceSum(squares);
  const double total = std::sqrt(squares.item<double>());
  // torch.nn.utils.clip_grad_norm_'s rule.
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1) {
    for (torch::Tensor& g : grads) g.mul_(coef);
  }
  return total;
}

void FullyShardedDataParallel::FinishOptimizerStep() {
  // The kept units' whole weights from the updated shards; the others gather when used.
  for (Unit& unit : units_) {
    if (!unit.kept_whole) continue;
    for (auto& flat : unit.flats) {
      if (flat->trainable()) flat->Gather(distributed());
    }
  }
}

void FullyShardedDataParallel::WithFullWeights(const std::function<void()>& fn, bool write_back) {
  for (Unit& unit : units_) Gather(unit);
  fn();
  for (Unit& unit : units_) {
    if (write_back) {
      for (auto& flat : unit.flats) flat->CopyParametersToShard();
    }
    if (!unit.kept_whole) Release(unit);
  }
}

void FullyShardedDataParallel::ForEachWholeUnit(const Model& model,
                                                const std::function<void(const NamedTensors&)>& fn) {
  for (size_t u = 0; u < units_.size(); ++u) {
    Unit& unit = units_[u];
    Gather(unit);
    NamedTensors tensors;
    for (const auto& flat : unit.flats) {
      for (const auto& named : flat->params()) tensors.push_back(named);
    }
    // Buffers are never sharded: they come with the root.
    if (u == 0) {
      for (auto& buffer : model.NamedBuffers()) tensors.push_back(std::move(buffer));
    }
    fn(tensors);
    if (!unit.kept_whole) Release(unit);
  }
}

}  // namespace trainerd
