// The memory one rank of a job needs while it trains, estimated from the spec before
// anything runs: trainerd admits a job when each rank's estimate fits --max-job-memory,
// and `trainer-cli validate` prints it. The estimate knows how the ranks share the model
// (fsdp and DeepSpeed ZeRO stages divide parameters, gradients and optimizer state),
// so that a model too large for DDP is admitted with full_shard on enough ranks.
//
// It counts the tensors that dominate: parameters, gradients, optimizer moments, a
// gathered unit's whole weights, and one batch's activations. Torch-free.
#ifndef TRAINERD_SPEC_MEMORY_ESTIMATE_H_
#define TRAINERD_SPEC_MEMORY_ESTIMATE_H_

#include <cstdint>
#include <string>

#include "spec/hf_config.h"
#include "trainer/v1/job_spec.pb.h"

namespace trainerd {

// What a model is made of, for the estimate.
struct ModelFootprint {
  double all_parameters = 0;
  double trained_parameters = 0;   // all, or a LoRA job's adapters (and head)
  double weight_bytes = 4;         // per parameter, in the model's dtype
  double trained_bytes = 4;        // per trained value (weight, gradient, moment)
  double root_parameters = 0;      // what fsdp keeps whole: embeddings, final norm, head
  double block_parameters = 0;     // one block (transformer layer): fsdp's unit
  double activation_floats = 0;    // one batch's activations, kept for backward
};

// One rank's share, in bytes.
struct RankMemory {
  std::string strategy;  // as ParallelStrategyName says
  int ranks = 1;
  double parameters = 0;
  double gradients = 0;
  double optimizer_state = 0;
  double gathered_unit = 0;  // full_shard: the whole weights of the block computing (and the next, prefetching)
  double activations = 0;
  int64_t total_bytes() const;
  // "about 1234 MB per rank (full_shard on 4 ranks): parameters 300 MB, ..."
  std::string Describe() const;
};

// The footprint of a built-in model (mlp, cnn, gpt, text_classifier); widths that the
// data decides count as 1, so it is a lower bound there.
ModelFootprint BuiltinFootprint(const trainer::v1::JobSpec& spec);
// The footprint of an hf model of `config` of which `trainable` parameters train.
ModelFootprint HfFootprint(const trainer::v1::JobSpec& spec, const HfConfig& config, int64_t trainable);

// Each rank's share of `model` when `args` trains it on `ranks` ranks.
RankMemory EstimateRankMemory(const ModelFootprint& model, const trainer::v1::TrainingArguments& args, int ranks);

// "" when `memory` fits `limit`; else the problem, "model: ...", with the estimate, and
// where the model would fit: fsdp full_shard on the fewest ranks that bring it under.
std::string MemoryLimitProblem(const ModelFootprint& model, const trainer::v1::TrainingArguments& args,
                               const RankMemory& memory, int64_t limit);

// The one-rank estimates that benchmarks and tests compare (EstimateRankMemory of 1 rank).
int64_t EstimateJobMemoryBytes(const trainer::v1::JobSpec& spec);
int64_t EstimateHfJobMemoryBytes(const trainer::v1::JobSpec& spec, const HfConfig& config, int64_t trainable);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_MEMORY_ESTIMATE_H_
