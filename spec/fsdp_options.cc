#include "spec/fsdp_options.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spec/deepspeed_config.h"

namespace trainerd {
namespace {

bool Has(const trainer::v1::TrainingArguments& a, const std::string& option) {
  return std::find(a.fsdp().begin(), a.fsdp().end(), option) != a.fsdp().end();
}

}  // namespace

std::string FsdpOptions::StrategyName() const {
  if (!enabled) return "";
  return reshard_after_forward ? "full_shard" : "shard_grad_op";
}

FsdpOptions ResolveFsdp(const trainer::v1::TrainingArguments& a) {
  FsdpOptions o;
  // A DeepSpeed config's ZeRO stages 2 and 3 are the same sharding.
  const DeepSpeedConfig ds = ResolveDeepSpeed(a);
  if (ds.enabled && ds.stage >= 2) {
    o.enabled = true;
    o.reshard_after_forward = ds.stage == 3;
    o.offload = ds.offload_optimizer;
    return o;
  }
  o.enabled = Has(a, "full_shard") || Has(a, "shard_grad_op");
  if (!o.enabled) return o;
  o.reshard_after_forward = Has(a, "full_shard");
  // FSDP2's form: fsdp true (read as full_shard) with reshard_after_forward false.
  if (a.fsdp_config().has_reshard_after_forward() && !a.fsdp_config().reshard_after_forward()) {
    o.reshard_after_forward = false;
  }
  o.offload = Has(a, "offload") || a.fsdp_config().cpu_offload();
  o.sharded_state_dict = a.fsdp_config().state_dict_type() == "SHARDED_STATE_DICT";
  o.forward_prefetch = a.fsdp_config().forward_prefetch();
  o.cpu_ram_efficient_loading = a.fsdp_config().cpu_ram_efficient_loading();
  o.backward_prefetch = !a.fsdp_config().has_backward_prefetch() ||
                        absl::AsciiStrToUpper(a.fsdp_config().backward_prefetch()) != "NO_PREFETCH";
  return o;
}

std::string ParallelStrategyName(const trainer::v1::TrainingArguments& args, int ranks) {
  const FsdpOptions fsdp = ResolveFsdp(args);
  if (fsdp.enabled) return fsdp.StrategyName();
  if (ranks <= 1) return "single";
  if (args.optimizer_sharding() || ResolveDeepSpeed(args).stage == 1) return "zero1";
  return "ddp";
}

const std::vector<std::string>& KnownBlockClasses() {
  static const auto* classes = new std::vector<std::string>{"LlamaDecoderLayer", "MistralDecoderLayer",
                                                           "Qwen2DecoderLayer", "GPT2Block", "BertLayer"};
  return *classes;
}

std::vector<std::string> FindFsdpProblems(const trainer::v1::JobSpec& spec) {
  const auto& a = spec.training_args();
  const auto& c = a.fsdp_config();
  const std::string p = "training_args.";
  std::vector<std::string> problems;
  auto add = [&problems](const std::string& field, const std::string& what) {
    problems.push_back(absl::StrCat(field, ": ", what));
  };
  static const std::vector<std::string> kOptions = {"full_shard", "shard_grad_op", "offload", "auto_wrap"};
  for (int i = 0; i < a.fsdp_size(); ++i) {
    const std::string& option = a.fsdp(i);
    if (std::find(kOptions.begin(), kOptions.end(), option) != kOptions.end()) continue;
    const std::string shown = option.size() <= 64 ? option : option.substr(0, 64) + "...";
    add(absl::StrCat(p, "fsdp[", i, "]"),
        absl::StrCat("\"", shown, "\" is not supported; must be one of ", absl::StrJoin(kOptions, ", "),
                     absl::StartsWith(option, "hybrid_shard") ? " (hybrid sharding needs groups of nodes)" : ""));
  }
  const bool full = Has(a, "full_shard"), grad_op = Has(a, "shard_grad_op");
  if (full && grad_op) add(p + "fsdp", "choose one of full_shard and shard_grad_op");
  if (a.fsdp_size() > 0 && !full && !grad_op) add(p + "fsdp", "needs full_shard or shard_grad_op");
  const bool enabled = full || grad_op;
  if (a.has_fsdp_config() && !enabled) add(p + "fsdp_config", "needs training_args.fsdp (full_shard or shard_grad_op)");
  if (c.has_version() && c.version() != 1 && c.version() != 2) add(p + "fsdp_config.version", "must be 1 or 2");
  if (c.has_backward_prefetch()) {
    const std::string v = absl::AsciiStrToUpper(c.backward_prefetch());
    if (v != "BACKWARD_PRE" && v != "BACKWARD_POST" && v != "NO_PREFETCH") {
      add(p + "fsdp_config.backward_prefetch", "must be one of BACKWARD_PRE, BACKWARD_POST, NO_PREFETCH");
    }
  }
  if (c.has_state_dict_type() && c.state_dict_type() != "FULL_STATE_DICT" &&
      c.state_dict_type() != "SHARDED_STATE_DICT") {
    add(p + "fsdp_config.state_dict_type", "must be FULL_STATE_DICT or SHARDED_STATE_DICT");
  }
  for (int i = 0; i < c.transformer_layer_cls_to_wrap_size(); ++i) {
    const std::string& cls = c.transformer_layer_cls_to_wrap(i);
    const auto& known = KnownBlockClasses();
    if (std::find(known.begin(), known.end(), cls) == known.end()) {
      add(absl::StrCat(p, "fsdp_config.transformer_layer_cls_to_wrap[", i, "]"),
          absl::StrCat("\"", cls.substr(0, 64), "\" is not a block class of a model trainerd builds; one of ",
                       absl::StrJoin(known, ", ")));
    }
  }
  if (!ResolveFsdp(a).enabled) return problems;  // what follows holds for deepspeed's stages 2 and 3 too
  if (a.optimizer_sharding()) add(p + "optimizer_sharding", "fsdp shards the optimizer state already; leave it off");
  if (a.torch_compile()) add(p + "torch_compile", "cannot be combined with fsdp");
  if (absl::StartsWith(a.optim(), "galore_") || a.optim() == "adafactor") {
    // Their state is shaped by each whole matrix, which a flat shard no longer is.
    add(p + "optim", absl::StrCat(a.optim(), " keeps per-matrix state and cannot update flat shards; use an "
                                             "element-wise optimizer (adamw_torch, sgd, adagrad, rmsprop) with fsdp"));
  }
  if (a.fp16()) add(p + "fp16", "with fsdp use bf16 (fp16's loss scaling does not work on shards yet)");
  return problems;
}

std::vector<std::string> FsdpNoOpWarnings(const trainer::v1::TrainingArguments& a) {
  const auto& c = a.fsdp_config();
  std::vector<std::string> out;
  const std::string p = "training_args.fsdp_config.";
  if (c.has_min_num_params()) out.push_back(p + "min_num_params: accepted; the units are the model's blocks");
  if (c.has_backward_prefetch() && absl::AsciiStrToUpper(c.backward_prefetch()) == "BACKWARD_POST") {
    out.push_back(p + "backward_prefetch: BACKWARD_POST runs as BACKWARD_PRE (the next block's gather starts as "
                      "the current block's backward begins)");
  }
  if (c.has_limit_all_gathers()) out.push_back(p + "limit_all_gathers: accepted; at most one gather runs ahead");
  if (c.has_sync_module_states()) out.push_back(p + "sync_module_states: accepted; ranks always start from rank 0's");
  if (c.has_use_orig_params()) out.push_back(p + "use_orig_params: accepted; parameter names stay the model's");
  if (std::find(a.fsdp().begin(), a.fsdp().end(), "auto_wrap") != a.fsdp().end()) {
    out.push_back("training_args.fsdp: auto_wrap is what trainerd always does (each block is one unit)");
  }
  return out;
}

}  // namespace trainerd
