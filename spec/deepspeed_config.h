// DeepSpeedConfig: what a DeepSpeed config (HF's training_args.deepspeed) asks of
// trainerd. HF's Trainer hands such a file to DeepSpeed; trainerd reads the ZeRO stage
// and the optimizer offload from it and trains with its own sharding of the same
// stage, taking "auto" values from the training arguments as HF's integration does.
// Every other key is either a value that must agree with the training arguments, a
// tuning knob that changes nothing here (accepted with a warning), or refused by name.
// Torch-free.
#ifndef TRAINERD_SPEC_DEEPSPEED_CONFIG_H_
#define TRAINERD_SPEC_DEEPSPEED_CONFIG_H_

#include <string>
#include <vector>

#include "trainer/v1/job_spec.pb.h"

namespace trainerd {

struct DeepSpeedConfig {
  bool enabled = false;      // training_args.deepspeed is set
  int stage = 0;             // zero_optimization.stage: 0 none, 1 optimizer, 2 +gradients, 3 +parameters
  bool offload_optimizer = false;
  // train_batch_size when a number (it must be per-device batch x accumulation x
  // ranks, which only the worker knows); 0 for "auto" or absent.
  int64_t train_batch_size = 0;
};

// What `args.deepspeed` says (expects FindDeepSpeedProblems to have found nothing).
DeepSpeedConfig ResolveDeepSpeed(const trainer::v1::TrainingArguments& args);

// Every problem of training_args.deepspeed, as "training_args.deepspeed.<key>: what is
// wrong".
std::vector<std::string> FindDeepSpeedProblems(const trainer::v1::JobSpec& spec);

// The keys that are set but change nothing here, for the worker's log.
std::vector<std::string> DeepSpeedNoOpWarnings(const trainer::v1::TrainingArguments& args);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_DEEPSPEED_CONFIG_H_
