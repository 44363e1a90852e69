#include "spec/deepspeed_config.h"

#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace trainerd {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr char kPrefix[] = "training_args.deepspeed";

// DeepSpeed knobs that tune its own engine; trainerd's sharding has no such knob.
const std::set<std::string>& NoOpZeroKeys() {
  static const auto* keys = new std::set<std::string>{
      "overlap_comm", "contiguous_gradients", "reduce_bucket_size", "reduce_scatter", "allgather_partitions",
      "allgather_bucket_size", "round_robin_gradients", "sub_group_size", "stage3_prefetch_bucket_size",
      "stage3_param_persistence_threshold", "stage3_max_live_parameters", "stage3_max_reuse_distance",
      "stage3_gather_16bit_weights_on_model_save", "stage3_gather_fp16_weights_on_model_save",
      "elastic_checkpoint", "ignore_unused_parameters"};
  return *keys;
}

const std::set<std::string>& NoOpTopKeys() {
  static const auto* keys = new std::set<std::string>{
      "steps_per_print", "wall_clock_breakdown", "zero_allow_untested_optimizer", "zero_force_ds_cpu_optimizer",
      "communication_data_type", "prescale_gradients", "gradient_predivide_factor", "dump_state"};
  return *keys;
}

const std::set<std::string>& NoOpFp16Keys() {
  static const auto* keys = new std::set<std::string>{"loss_scale", "initial_scale_power", "loss_scale_window",
                                                      "hysteresis", "min_loss_scale", "auto_cast"};
  return *keys;
}

bool IsAuto(const Value& v) { return v.kind_case() == Value::kStringValue && v.string_value() == "auto"; }

class Checker {
 public:
  Checker(const trainer::v1::TrainingArguments& args, std::vector<std::string>* problems,
          std::vector<std::string>* no_ops)
      : args_(args), problems_(problems), no_ops_(no_ops) {}

  void Top(const Struct& config) {
    for (const auto& [key, value] : config.fields()) {
      const std::string path = absl::StrCat(kPrefix, ".", key);
      if (key == "zero_optimization") {
        Zero(value, path);
      } else if (key == "train_micro_batch_size_per_gpu") {
        Agrees(value, path, static_cast<double>(args_.per_device_train_batch_size()), "per_device_train_batch_size");
      } else if (key == "gradient_accumulation_steps") {
        Agrees(value, path, static_cast<double>(args_.gradient_accumulation_steps()), "gradient_accumulation_steps");
      } else if (key == "gradient_clipping") {
        Agrees(value, path, args_.max_grad_norm(), "max_grad_norm");
      } else if (key == "train_batch_size") {
        if (!IsAuto(value) && !(value.kind_case() == Value::kNumberValue && value.number_value() >= 1 &&
                                value.number_value() == std::floor(value.number_value()))) {
          Problem(path, "must be \"auto\" or a whole number of examples");
        }
      } else if (key == "bf16" || key == "fp16") {
        Precision(value, path, key == "bf16" ? args_.bf16() : args_.fp16(), key);
      } else if (key == "optimizer" || key == "scheduler") {
        Problem(path, absl::StrCat("DeepSpeed's ", key, "s are not available; leave it out and set training_args.",
                                   key == "optimizer" ? "optim" : "lr_scheduler_type",
                                   " (HF's Trainer then makes its own, as here)"));
      } else if (NoOpTopKeys().count(key)) {
        NoOp(path, "tunes DeepSpeed's engine, which trainerd does not run");
      } else {
        Problem(path, "is not a DeepSpeed key trainerd reads (zero_optimization, train_micro_batch_size_per_gpu, "
                      "train_batch_size, gradient_accumulation_steps, gradient_clipping, bf16, fp16)");
      }
    }
  }

 private:
  void Zero(const Value& value, const std::string& path) {
    if (value.kind_case() != Value::kStructValue) return Problem(path, "must be an object");
    for (const auto& [key, v] : value.struct_value().fields()) {
      const std::string child = absl::StrCat(path, ".", key);
      if (key == "stage") {
        if (v.kind_case() != Value::kNumberValue ||
            (v.number_value() != 0 && v.number_value() != 1 && v.number_value() != 2 && v.number_value() != 3)) {
          Problem(child, "must be 0, 1, 2 or 3");
        }
      } else if (key == "offload_optimizer") {
        Offload(v, child, /*parameters=*/false);
      } else if (key == "offload_param") {
        Offload(v, child, /*parameters=*/true);
      } else if (NoOpZeroKeys().count(key)) {
        NoOp(child, "tunes DeepSpeed's engine; trainerd gathers each block when it runs");
      } else {
        Problem(child, "is not a zero_optimization key trainerd reads (stage, offload_optimizer)");
      }
    }
  }

  void Offload(const Value& value, const std::string& path, bool parameters) {
    if (value.kind_case() != Value::kStructValue) return Problem(path, "must be an object");
    for (const auto& [key, v] : value.struct_value().fields()) {
      const std::string child = absl::StrCat(path, ".", key);
      if (key == "device") {
        const std::string device = v.kind_case() == Value::kStringValue ? v.string_value() : "";
        if (device == "none") continue;
        if (device == "cpu" && !parameters) continue;
        Problem(child, device == "cpu"   ? "offloading parameters is not available; use stage 3, which shards them"
                       : device == "nvme" ? "offloading to NVMe is not available"
                                          : "must be \"cpu\" or \"none\"");
      } else if (key == "pin_memory" || key == "buffer_count" || key == "fast_init" || key == "ratio") {
        NoOp(child, "tunes DeepSpeed's offload");
      } else {
        Problem(child, "is not an offload key trainerd reads (device)");
      }
    }
  }

  void Precision(const Value& value, const std::string& path, bool actual, const std::string& arg) {
    if (value.kind_case() != Value::kStructValue) return Problem(path, "must be an object");
    for (const auto& [key, v] : value.struct_value().fields()) {
      const std::string child = absl::StrCat(path, ".", key);
      if (key == "enabled") {
        if (IsAuto(v)) continue;
        if (v.kind_case() != Value::kBoolValue) {
          Problem(child, "must be true, false or \"auto\"");
        } else if (v.bool_value() != actual) {
          Problem(child, absl::StrCat("is ", v.bool_value() ? "true" : "false", " and training_args.", arg, " is ",
                                      actual ? "true" : "false", "; make them agree or write \"auto\""));
        }
      } else if (arg == "fp16" && NoOpFp16Keys().count(key)) {
        NoOp(child, "tunes DeepSpeed's loss scaler");
      } else {
        Problem(child, "is not a key trainerd reads (enabled)");
      }
    }
  }

  // HF's rule: a value the training arguments also set must be "auto" or agree.
  void Agrees(const Value& value, const std::string& path, double actual, const std::string& arg) {
    if (IsAuto(value)) return;
    if (value.kind_case() != Value::kNumberValue) return Problem(path, "must be a number or \"auto\"");
    if (value.number_value() != actual) {
      Problem(path, absl::StrCat("is ", value.number_value(), " and training_args.", arg, " is ", actual,
                                 "; make them agree or write \"auto\""));
    }
  }

  void Problem(const std::string& path, const std::string& what) { problems_->push_back(absl::StrCat(path, ": ", what)); }
  void NoOp(const std::string& path, const std::string& why) {
    if (no_ops_ != nullptr) no_ops_->push_back(absl::StrCat(path, ": accepted; ", why));
  }

  const trainer::v1::TrainingArguments& args_;
  std::vector<std::string>* problems_;
  std::vector<std::string>* no_ops_;
};

const Value* Find(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? nullptr : &it->second;
}

}  // namespace

DeepSpeedConfig ResolveDeepSpeed(const trainer::v1::TrainingArguments& args) {
  DeepSpeedConfig out;
  if (!args.has_deepspeed()) return out;
  out.enabled = true;
  const Value* zero = Find(args.deepspeed(), "zero_optimization");
  if (zero != nullptr && zero->kind_case() == Value::kStructValue) {
    const Value* stage = Find(zero->struct_value(), "stage");
    if (stage != nullptr && stage->kind_case() == Value::kNumberValue) out.stage = static_cast<int>(stage->number_value());
    const Value* offload = Find(zero->struct_value(), "offload_optimizer");
    if (offload != nullptr && offload->kind_case() == Value::kStructValue) {
      const Value* device = Find(offload->struct_value(), "device");
      out.offload_optimizer = device != nullptr && device->kind_case() == Value::kStringValue &&
                              device->string_value() == "cpu";
    }
  }
  const Value* batch = Find(args.deepspeed(), "train_batch_size");
  if (batch != nullptr && batch->kind_case() == Value::kNumberValue) {
    out.train_batch_size = static_cast<int64_t>(batch->number_value());
  }
  return out;
}

std::vector<std::string> FindDeepSpeedProblems(const trainer::v1::JobSpec& spec) {
  const auto& a = spec.training_args();
  std::vector<std::string> problems;
  if (!a.has_deepspeed()) return problems;
  if (a.fsdp_size() > 0 || a.has_fsdp_config()) {
    problems.push_back(absl::StrCat(kPrefix, ": choose one of fsdp and deepspeed (both shard the model)"));
  }
  Checker(a, &problems, nullptr).Top(a.deepspeed());
  const DeepSpeedConfig ds = ResolveDeepSpeed(a);
  if (ds.offload_optimizer && ds.stage < 2) {
    problems.push_back(absl::StrCat(kPrefix, ".zero_optimization.offload_optimizer: needs stage 2 or 3"));
  }
  return problems;
}

std::vector<std::string> DeepSpeedNoOpWarnings(const trainer::v1::TrainingArguments& args) {
  std::vector<std::string> problems, no_ops;
  if (args.has_deepspeed()) Checker(args, &problems, &no_ops).Top(args.deepspeed());
  return no_ops;
}

}  // namespace trainerd
