#include "spec/spec_bounds.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/reflection.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace trainerd {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using trainer::v1::JobSpec;

bool IsStructType(const google::protobuf::Descriptor* d) {
  const std::string& n = d->full_name();
  return n == "google.protobuf.Struct" || n == "google.protobuf.Value" || n == "google.protobuf.ListValue";
}

// Every number of a spec ends up as a 32-bit float (learning rates, betas and
// thresholds in the optimizer's and the loss's tensors) or as a bounded integer: it must
// be 0 or of a float's normal magnitude, or it would overflow (1e308 -> inf) or vanish
// (1e-40) at run time, after the job was accepted.
void CheckNumber(const std::string& field, double v, std::vector<std::string>* problems) {
  constexpr double kMax = std::numeric_limits<float>::max();
  constexpr double kMin = std::numeric_limits<float>::min();
  if (!std::isfinite(v)) {
    problems->push_back(absl::StrCat(field, ": must be a finite number"));
  } else if (std::abs(v) > kMax) {
    problems->push_back(absl::StrCat(field, ": is too large for a 32-bit float (at most ", absl::StrFormat("%.4g", kMax),
                                     " in magnitude)"));
  } else if (v != 0 && std::abs(v) < kMin) {
    problems->push_back(absl::StrCat(field, ": is too close to zero for a 32-bit float (0, or at least ",
                                     absl::StrFormat("%.4g", kMin), " in magnitude)"));
  }
}

void CheckString(const std::string& field, const std::string& v, std::vector<std::string>* problems) {
  if (v.size() > kMaxSpecStringBytes) {
    problems->push_back(absl::StrCat(field, ": is ", v.size(), " bytes long; at most ", kMaxSpecStringBytes,
                                     " are accepted"));
  }
}

// Walks every set field of `m`; `path` names `m` in the problems ("" for the spec).
void WalkMessage(const Message& m, const std::string& path, int depth, std::vector<std::string>* problems) {
  if (depth > kMaxSpecNesting) {
    problems->push_back(absl::StrCat(path, ": nested more than ", kMaxSpecNesting, " levels deep"));
    return;
  }
  const bool in_struct = IsStructType(m.GetDescriptor());
  const google::protobuf::Reflection* r = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    // Inside a Struct the protobuf plumbing (fields, number_value, ...) is not part of
    // the name the user wrote.
    std::string name = in_struct ? path : (path.empty() ? f->name() : absl::StrCat(path, ".", f->name()));
    if (f->is_map()) {
      const int n = r->FieldSize(m, f);
      if (n > kMaxSpecListItems) {
        problems->push_back(absl::StrCat(name, ": has ", n, " entries; at most ", kMaxSpecListItems));
        continue;
      }
      for (int i = 0; i < n; ++i) {
        const Message& entry = r->GetRepeatedMessage(m, f, i);
        const auto* key_field = entry.GetDescriptor()->FindFieldByNumber(1);
        const auto* value_field = entry.GetDescriptor()->FindFieldByNumber(2);
        const std::string key = entry.GetReflection()->GetString(entry, key_field);
        CheckString(absl::StrCat(name, " key"), key, problems);
        const std::string entry_name = absl::StrCat(name, ".", key.size() <= 64 ? key : key.substr(0, 64) + "...");
        if (value_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
          WalkMessage(entry.GetReflection()->GetMessage(entry, value_field), entry_name, depth + 1, problems);
        }
      }
      continue;
    }
    if (f->is_repeated()) {
      const int n = r->FieldSize(m, f);
      if (n > kMaxSpecListItems) {
        problems->push_back(absl::StrCat(name, ": has ", n, " items; at most ", kMaxSpecListItems));
        continue;
      }
      for (int i = 0; i < n; ++i) {
        const std::string item = absl::StrCat(name, "[", i, "]");
        switch (f->cpp_type()) {
          case FieldDescriptor::CPPTYPE_DOUBLE: CheckNumber(item, r->GetRepeatedDouble(m, f, i), problems); break;
          case FieldDescriptor::CPPTYPE_FLOAT: CheckNumber(item, r->GetRepeatedFloat(m, f, i), problems); break;
          case FieldDescriptor::CPPTYPE_STRING: CheckString(item, r->GetRepeatedString(m, f, i), problems); break;
          case FieldDescriptor::CPPTYPE_MESSAGE:
            WalkMessage(r->GetRepeatedMessage(m, f, i), item, depth + 1, problems);
            break;
          default: break;
        }
      }
      continue;
    }
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_DOUBLE: CheckNumber(name, r->GetDouble(m, f), problems); break;
      case FieldDescriptor::CPPTYPE_FLOAT: CheckNumber(name, r->GetFloat(m, f), problems); break;
      case FieldDescriptor::CPPTYPE_STRING: CheckString(name, r->GetString(m, f), problems); break;
      case FieldDescriptor::CPPTYPE_MESSAGE: WalkMessage(r->GetMessage(m, f), name, depth + 1, problems); break;
      default: break;
    }
  }
}

// Integer fields whose size decides an allocation or a loop: each has a ceiling far
// above any real job, so that arithmetic on them cannot overflow.
void CheckCeilings(const JobSpec& spec, const SpecLimits& limits, std::vector<std::string>* problems) {
  const auto& a = spec.training_args();
  const auto& m = spec.model();
  const auto& d = spec.data();
  constexpr int64_t kSteps = 1'000'000'000'000;
  std::vector<std::tuple<std::string, double, double>> checks = {
      {"training_args.max_steps", static_cast<double>(a.max_steps()), kSteps},
      {"training_args.num_train_epochs", a.num_train_epochs(), 1e6},
      {"training_args.per_device_train_batch_size", static_cast<double>(a.per_device_train_batch_size()), 1 << 24},
      {"training_args.per_device_eval_batch_size", static_cast<double>(a.per_device_eval_batch_size()), 1 << 24},
      {"training_args.gradient_accumulation_steps", static_cast<double>(a.gradient_accumulation_steps()), 1 << 20},
      {"training_args.warmup_steps", static_cast<double>(a.warmup_steps()), kSteps},
      {"training_args.eval_steps", a.eval_steps(), kSteps},
      {"training_args.logging_steps", a.logging_steps(), kSteps},
      {"training_args.save_steps", a.save_steps(), kSteps},
      {"training_args.save_total_limit", static_cast<double>(a.save_total_limit()), 1e6},
      {"training_args.dataloader_num_workers", static_cast<double>(a.dataloader_num_workers()), 64},
      {"training_args.ddp_timeout", static_cast<double>(a.ddp_timeout()), 7 * 86400},
      {"training_args.ddp_bucket_cap_mb", a.ddp_bucket_cap_mb(), 1 << 16},
      {"training_args.neftune_noise_alpha", a.neftune_noise_alpha(), 1e6},
      {"model.num_outputs", static_cast<double>(m.num_outputs()), 1 << 24},
      {"model.hidden_size", static_cast<double>(m.hidden_size()), 1 << 16},
      {"model.num_layers", static_cast<double>(m.num_layers()), 1024},
      {"model.num_heads", static_cast<double>(m.num_heads()), 1024},
      {"model.intermediate_size", static_cast<double>(m.intermediate_size()), 1 << 18},
      {"data.max_seq_length", static_cast<double>(d.max_seq_length()), 1 << 20},
      {"data.tokenizer.vocab_size", static_cast<double>(d.tokenizer().vocab_size()), 1 << 22},
      {"data.train.limit", static_cast<double>(d.train().limit()), kSteps},
      {"data.eval.limit", static_cast<double>(d.eval().limit()), kSteps},
      {"data.test.limit", static_cast<double>(d.test().limit()), kSteps},
  };
  for (int i = 0; i < m.hidden_sizes_size(); ++i) {
    checks.emplace_back(absl::StrCat("model.hidden_sizes[", i, "]"), static_cast<double>(m.hidden_sizes(i)), 1 << 24);
  }
  for (int i = 0; i < m.conv_channels_size(); ++i) {
    checks.emplace_back(absl::StrCat("model.conv_channels[", i, "]"), static_cast<double>(m.conv_channels(i)), 1 << 16);
  }
  for (int i = 0; i < spec.callbacks_size(); ++i) {
    checks.emplace_back(absl::StrCat("callbacks[", i, "].steps"), static_cast<double>(spec.callbacks(i).steps()), kSteps);
    checks.emplace_back(absl::StrCat("callbacks[", i, "].early_stopping_patience"),
                        static_cast<double>(spec.callbacks(i).early_stopping_patience()), 1e6);
  }
  for (const auto& [field, value, ceiling] : checks) {
    if (value > ceiling) problems->push_back(absl::StrCat(field, ": must be at most ", ceiling));
  }
  const int64_t threads = a.torch_num_threads();
  if (limits.max_threads > 0 && threads > limits.max_threads) {
    problems->push_back(absl::StrCat("training_args.torch_num_threads: must be at most ", limits.max_threads,
                                     " (the CPUs of one slot; 0 takes them all)"));
  } else if (threads > 4096) {
    problems->push_back("training_args.torch_num_threads: must be at most 4096");
  }
}

}  // namespace

void FindBoundsProblems(const JobSpec& spec, const SpecLimits& limits, std::vector<std::string>* problems) {
  const size_t size = spec.ByteSizeLong();
  if (size > kMaxSpecBytes) {
    problems->push_back(absl::StrCat("spec: is ", size, " bytes encoded; at most ", kMaxSpecBytes, " are accepted"));
    return;  // nothing in it is looked at further
  }
  WalkMessage(spec, "", 0, problems);
  CheckCeilings(spec, limits, problems);
}

}  // namespace trainerd
