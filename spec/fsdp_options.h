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
  // "full_shard" or "shard_grad_op" (what a checkpoint records); "" when not enabled.
  std::string StrategyName() const;
};

// What `args` asks for (expects FindFsdpProblems to have found nothing).
FsdpOptions ResolveFsdp(const trainer::v1::TrainingArguments& args);

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
