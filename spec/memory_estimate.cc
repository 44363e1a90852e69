#include "spec/memory_estimate.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "spec/fsdp_options.h"
#include "spec/lora_config.h"
#include "spec/spec_defaults.h"

namespace trainerd {
namespace {

using trainer::v1::JobSpec;

std::string Megabytes(double bytes) { return absl::StrFormat("%.0f MB", bytes / 1e6); }

int64_t Saturate(double bytes) {
  if (!(bytes < static_cast<double>(std::numeric_limits<int64_t>::max()))) return std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(bytes);
}

double Batch(const JobSpec& spec) {
  const auto& a = spec.training_args();
  return static_cast<double>(std::max(a.per_device_train_batch_size(), a.per_device_eval_batch_size()));
}

double SeqLength(const JobSpec& spec) {
  return static_cast<double>(spec.data().max_seq_length() > 0 ? spec.data().max_seq_length() : kDefaultMaxSeqLength);
}

// Activations per token of a transformer: about 16 hidden-sized tensors per block, the
// attention scores, and the logits with their gradient when it is a language model.
double TransformerActivations(const JobSpec& spec, double hidden, double layers, double vocab, bool lm) {
  return Batch(spec) * SeqLength(spec) * (layers * (16 * hidden + SeqLength(spec)) + (lm ? 2 * vocab : 0));
}

// The parameters of block 0 of an hf architecture (its linear layers and norms).
double HfBlockParameters(const HfConfig& c) {
  const std::string prefix = c.kind == HfArchitecture::kGpt2LMHeadModel              ? "transformer.h.0."
                             : c.kind == HfArchitecture::kBertForSequenceClassification ? "bert.encoder.layer.0."
                                                                                          : "model.layers.0.";
  double n = 0;
  for (const HfLinearLayer& l : HfLinearLayers(c)) {
    if (absl::StartsWith(l.name, prefix)) n += static_cast<double>(l.in * l.out + (l.bias ? l.out : 0));
  }
  const bool layer_norms = c.kind == HfArchitecture::kGpt2LMHeadModel || c.kind == HfArchitecture::kBertForSequenceClassification;
  return n + static_cast<double>((layer_norms ? 4 : 2) * c.hidden_size);
}

}  // namespace

int64_t RankMemory::total_bytes() const {
  return Saturate(parameters + gradients + optimizer_state + gathered_unit + activations);
}

std::string RankMemory::Describe() const {
  return absl::StrCat("about ", Megabytes(static_cast<double>(total_bytes())), " per rank (", strategy, " on ", ranks,
                      ranks == 1 ? " rank" : " ranks", "): parameters ", Megabytes(parameters), ", gradients ",
                      Megabytes(gradients), ", optimizer state ", Megabytes(optimizer_state), ", gathered blocks ",
                      Megabytes(gathered_unit), ", activations ", Megabytes(activations));
}

ModelFootprint BuiltinFootprint(const JobSpec& spec) {
  const auto& m = spec.model();
  const auto& d = spec.data();
  ModelFootprint f;
  const double outputs = std::max<double>(1, static_cast<double>(m.num_outputs()));
  double params = 0;
  double width = std::max<double>(1, d.train().feature_columns_size());
  double widths = 0;  // of the activations an mlp or cnn keeps
  if (m.type() == "cnn") {
    double channels = 1;
    for (int64_t c : m.conv_channels()) {
      params += 9 * channels * static_cast<double>(c) + static_cast<double>(c);
      channels = static_cast<double>(c);
      widths += static_cast<double>(c);
    }
    width = channels;
  }
  if (m.type() == "mlp" || m.type() == "cnn") {
    for (int64_t h : m.hidden_sizes()) {
      params += width * static_cast<double>(h) + static_cast<double>(h);
      width = static_cast<double>(h);
      widths += static_cast<double>(h);
    }
    params += width * outputs + outputs;
    f.activation_floats = Batch(spec) * 3 * widths;
    f.root_parameters = params;  // no blocks: fsdp keeps it whole
  }
  if (m.type() == "gpt" || m.type() == "text_classifier") {
    const double h = static_cast<double>(m.hidden_size() > 0 ? m.hidden_size() : kDefaultTextHiddenSize);
    const double layers = static_cast<double>(m.num_layers() > 0 ? m.num_layers() : kDefaultTextLayers);
    const double inner = static_cast<double>(
        m.intermediate_size() > 0 ? m.intermediate_size() : DefaultIntermediateSize(static_cast<int64_t>(h)));
    const double vocab =
        static_cast<double>(d.tokenizer().vocab_size() > 0 ? d.tokenizer().vocab_size() : kDefaultVocabSize);
    f.block_parameters = 4 * h * h + 3 * h * inner + 2 * h;
    f.root_parameters = vocab * h + h + (m.type() == "text_classifier" ? h * outputs + outputs : 0);
    params = f.root_parameters + layers * f.block_parameters;
    f.activation_floats = TransformerActivations(spec, h, layers, vocab, m.type() == "gpt");
  }
  f.all_parameters = f.trained_parameters = params;
  return f;
}

ModelFootprint HfFootprint(const JobSpec& spec, const HfConfig& config, int64_t trainable) {
  ModelFootprint f;
  const std::string& dtype = spec.model().torch_dtype() == "auto" ? config.torch_dtype : spec.model().torch_dtype();
  f.weight_bytes = dtype == "bfloat16" || dtype == "float16" ? 2 : 4;
  f.all_parameters = static_cast<double>(HfParameterCount(config));
  f.trained_parameters = static_cast<double>(trainable);
  // Full fine-tuning keeps gradients and moments in the model's dtype; LoRA's adapters
  // train in float32.
  f.trained_bytes = trainable < HfParameterCount(config) ? 4 : f.weight_bytes;
  f.block_parameters = HfBlockParameters(config);
  f.root_parameters = std::max(0.0, f.all_parameters - static_cast<double>(config.num_hidden_layers) * f.block_parameters);
  f.activation_floats = TransformerActivations(spec, static_cast<double>(config.hidden_size),
                                               static_cast<double>(config.num_hidden_layers),
                                               static_cast<double>(config.vocab_size), /*lm=*/true);
  return f;
}

RankMemory EstimateRankMemory(const ModelFootprint& f, const trainer::v1::TrainingArguments& args, int ranks) {
  RankMemory m;
  m.ranks = std::max(1, ranks);
  m.strategy = ParallelStrategyName(args, m.ranks);
  const double n = m.ranks, t = f.trained_bytes, trained = f.trained_parameters;
  const double frozen = f.weight_bytes * (f.all_parameters - trained);
  m.activations = 4 * f.activation_floats;
  const bool accumulates = args.gradient_accumulation_steps() > 1;
  if (m.strategy == "single" || m.strategy == "ddp" || m.strategy == "zero1") {
    m.parameters = frozen + t * trained;
    m.gradients = t * trained;
    m.optimizer_state = 2 * t * trained / (m.strategy == "zero1" ? n : 1);
    return m;
  }
  // fsdp: every parameter (frozen ones too) lives as slices, 1/n on each rank, and each
  // rank's optimizer holds the state of its trained slices. The root unit is kept whole,
  // and its gradients stay whole through backward (its embedding is reached last); a
  // block's gradients are whole only until reduce-scattered. With accumulation, whole
  // gradients build up between the reduce-scatters.
  const double per_parameter = (frozen + t * trained) / std::max(1.0, f.all_parameters);  // whole weights' bytes
  const double slices = per_parameter * f.all_parameters / n;
  m.optimizer_state = 2 * t * trained / n;
  m.gradients = t * trained / n + t * (accumulates ? trained : std::min(trained, f.root_parameters + f.block_parameters));
  if (m.strategy == "shard_grad_op") {
    m.parameters = per_parameter * f.all_parameters + slices;  // whole weights kept, beside the slices
  } else {
    m.parameters = per_parameter * f.root_parameters + slices;
    // The block computing, and with prefetching the next one.
    const FsdpOptions fsdp = ResolveFsdp(args);
    m.gathered_unit = per_parameter * f.block_parameters * (fsdp.backward_prefetch || fsdp.forward_prefetch ? 2 : 1);
  }
  return m;
}

std::string MemoryLimitProblem(const ModelFootprint& model, const trainer::v1::TrainingArguments& args,
                               const RankMemory& memory, int64_t limit) {
  if (limit <= 0 || memory.total_bytes() <= limit) return "";
  std::string problem = absl::StrCat("model: the job would need ", memory.Describe(), "; the limit is ",
                                     Megabytes(static_cast<double>(limit)), " per rank (trainerd --max-job-memory)");
  if (!args.has_deepspeed() && !args.optimizer_sharding()) {
    trainer::v1::TrainingArguments sharded = args;
    sharded.clear_fsdp();
    sharded.add_fsdp("full_shard");
    for (int ranks = std::max(2, memory.ranks + (memory.strategy == "full_shard" ? 1 : 0)); ranks <= 1024; ++ranks) {
      const RankMemory fits = EstimateRankMemory(model, sharded, ranks);
      if (fits.total_bytes() > limit) continue;
      return absl::StrCat(problem, "; with training_args.fsdp full_shard on ", ranks,
                          " ranks (resources.ranks) it would need ", fits.Describe());
    }
  }
  return problem;
}

int64_t EstimateJobMemoryBytes(const JobSpec& spec) {
  return EstimateRankMemory(BuiltinFootprint(spec), spec.training_args(), 1).total_bytes();
}

int64_t EstimateHfJobMemoryBytes(const JobSpec& spec, const HfConfig& config, int64_t trainable) {
  return EstimateRankMemory(HfFootprint(spec, config, trainable), spec.training_args(), 1).total_bytes();
}

}  // namespace trainerd
