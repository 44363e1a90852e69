// FsdpOptions: the fully sharded data parallelism that HF's training_args.fsdp and
// fsdp_config ask for, resolved once for trainerd's validator and the worker. Torch-free.
#ifndef TRAINERD_SPEC_FSDP_OPTIONS_H_
#define TRAINERD_SPEC_FSDP_OPTIONS_H_

#include <string>
#include <vector>

#include "trainer/v1/job_spec.pb.h"

namespace trainerd {

struct FsdpOptions {
  bool enabled = false;
  // full_shard (ZeRO-3): a block's whole weights exist only while it computes. False:
  // shard_grad_op (ZeRO-2), whole weights kept, gradients and optimizer state sharded.
  bool reshard_after_forward = true;
  bool offload = false;  // optimizer state and fp32 master shards in CPU memory
  // Checkpoints hold each rank's slice of the weights (SHARDED_STATE_DICT) instead of
  // the whole weights (FULL_STATE_DICT, gathered).
  bool sharded_state_dict = false;
  // Start gathering the block that runs next while one computes: in backward (HF's
  // backward_prefetch, on unless NO_PREFETCH) and in forward (forward_prefetch, off).
  bool backward_prefetch = true;
  bool forward_prefetch = false;
  // A Hugging Face folder's blocks are built without their weights, and each rank reads
  // only its slices of them from the files (cpu_ram_efficient_loading).
  bool cpu_ram_efficient_loading = false;
  // "full_shard" or "shard_grad_op" (what a checkpoint records); "" when not enabled.
  std::string StrategyName() const;
};

// What `args` asks for, through fsdp or a DeepSpeed config's ZeRO stage 2 or 3 (expects
// FindFsdpProblems to have found nothing).
FsdpOptions ResolveFsdp(const trainer::v1::TrainingArguments& args);

// How `ranks` ranks share each step of a job with `args`, by the name checkpoints record:
// "single" (one rank), "ddp", "zero1" (optimizer_sharding, DeepSpeed stage 1),
// "shard_grad_op" or "full_shard" (fsdp, DeepSpeed stages 2 and 3, on any number of
// ranks). The worker builds the strategy this names; the memory estimate follows it.
std::string ParallelStrategyName(const trainer::v1::TrainingArguments& args, int ranks);

// Every problem of training_args.fsdp and fsdp_config, as "field: what is wrong": unknown
// options, contradictions, and what cannot be combined with sharding.
std::vector<std::string> FindFsdpProblems(const trainer::v1::JobSpec& spec);

// The fsdp_config keys that are set but change nothing here, with why (the worker logs
// them as warnings, as HF's no-op arguments are).
std::vector<std::string> FsdpNoOpWarnings(const trainer::v1::TrainingArguments& args);

// The block classes fsdp_config.transformer_layer_cls_to_wrap may name: those of the
// architectures trainerd builds.
const std::vector<std::string>& KnownBlockClasses();

}  // namespace trainerd

#endif  // TRAINERD_SPEC_FSDP_OPTIONS_H_
