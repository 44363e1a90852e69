#include "spec/spec_loader.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "spec/spec_bounds.h"
#include "spec/user_files.h"
#include "trainer/v1/hf_arguments.pb.h"

namespace trainerd {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

std::string JsonQuote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

bool ParseBool(const std::string& s, bool* out) {
  std::string v = absl::AsciiStrToLower(s);
  if (v == "true" || v == "yes" || v == "on") { *out = true; return true; }
  if (v == "false" || v == "no" || v == "off") { *out = false; return true; }
  return false;
}

bool ParseInt(const std::string& s, long long* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

bool ParseDouble(const std::string& s, double* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

// HF TrainingArguments that change nothing here, accepted with a warning (why) so that
// an HF script's arguments load as they are; and HF's old names of fields. Both are read
// from proto/trainer/v1/hf_arguments.proto, which the Python client reads too.
struct HfOnlyArgumentNames {
  std::map<std::string, std::string> ignored;  // name -> why
  std::map<std::string, std::string> renamed;  // old name -> field
};

const HfOnlyArgumentNames& HfOnlyArguments() {
  static const auto* names = [] {
    auto* out = new HfOnlyArgumentNames;
    const Descriptor* d = trainer::v1::HfOnlyArguments::descriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      const google::protobuf::FieldOptions& options = d->field(i)->options();
      if (options.HasExtension(trainer::v1::hf_ignored_because)) {
        out->ignored[d->field(i)->name()] = options.GetExtension(trainer::v1::hf_ignored_because);
      }
      if (options.HasExtension(trainer::v1::hf_renamed_to)) {
        out->renamed[d->field(i)->name()] = options.GetExtension(trainer::v1::hf_renamed_to);
      }
    }
    return out;
  }();
  return *names;
}

// Converts YAML to JSON, checked against a message descriptor.
//
// YAML aliases refer to a node instead of copying it, so a small document can stand for
// an exponentially large one (a "billion laughs"). The conversion writes the expanded
// document, and stops as soon as it has written kMaxSpecBytes: the bound holds while the
// document is expanded, not after.
class YamlToJson {
 public:
  std::vector<std::string> errors;
  std::vector<std::string> warnings;

  bool exhausted() const { return left_ < 0; }

  std::string Message(const YAML::Node& node, const Descriptor* desc, const std::string& path) {
    if (Spend(2)) return "{}";
    if (!node || node.IsNull()) return "{}";
    if (!node.IsMap()) {
      errors.push_back(absl::StrCat(Name(path), ": expected a mapping of fields"));
      return "{}";
    }
    if (desc->full_name() == "google.protobuf.Struct") return Generic(node);
    std::vector<std::string> members;
    std::set<std::string> seen;
    const bool hf_arguments = desc == trainer::v1::TrainingArguments::descriptor();
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) {
        errors.push_back(absl::StrCat(Name(path), ": a field name must be a plain word"));
        continue;
      }
      std::string key = kv.first.Scalar();
      if (Spend(key.size() + 4)) return "{}";
      std::string child = path.empty() ? key : absl::StrCat(path, ".", key);
      if (hf_arguments && HfOnlyArguments().renamed.count(key)) {
        const std::string now = HfOnlyArguments().renamed.at(key);
        warnings.push_back(absl::StrCat(child, ": HF's old name for ", now, "; read as ", now));
        key = now;
        child = path.empty() ? key : absl::StrCat(path, ".", key);
      }
      // HF reads fsdp_config's keys with or without their "fsdp_" prefix.
      if (desc == trainer::v1::FsdpConfig::descriptor() && absl::StartsWith(key, "fsdp_")) {
        key = key.substr(5);
        child = absl::StrCat(path, ".", key);
      }
      if (!seen.insert(key).second) {
        errors.push_back(absl::StrCat(child, ": given more than once"));
        continue;
      }
      const FieldDescriptor* field = desc->FindFieldByName(key);
      if (field == nullptr && hf_arguments && HfOnlyArguments().ignored.count(key)) {
        warnings.push_back(absl::StrCat(child, ": accepted and ignored (", HfOnlyArguments().ignored.at(key), ")"));
        continue;
      }
      if (field == nullptr) {
        errors.push_back(absl::StrCat(child, ": unknown field"));
        continue;
      }
      if (kv.second.IsNull()) continue;  // "key:" with no value means "not set".
      // peft's target_modules is a list of names or one expression (or "all-linear").
      if (desc == trainer::v1::PeftConfig::descriptor() && key == "target_modules" && kv.second.IsScalar()) {
        field = desc->FindFieldByName("target_modules_regex");
        key = field->name();
      }
      members.push_back(absl::StrCat(JsonQuote(key), ":", Field(kv.second, field, child)));
    }
    return absl::StrCat("{", absl::StrJoin(members, ","), "}");
  }

 private:
  static std::string Name(const std::string& path) { return path.empty() ? "spec" : path; }

  // HF takes report_to as one name or a list; its integrations other than TensorBoard
  // are dropped with a warning, so that an HF script's arguments still load.
  std::string ReportTo(const YAML::Node& node, const FieldDescriptor* field, const std::string& path) {
    std::vector<std::string> items;
    const bool one = node.IsScalar();
    for (size_t i = 0; i < (one ? 1 : node.size()); ++i) {
      const YAML::Node item = one ? node : node[i];
      const std::string name = item.IsScalar() ? item.as<std::string>() : "";
      const std::string item_path = one ? path : absl::StrCat(path, "[", i, "]");
      if (name == "tensorboard" || name == "all" || name == "none" || !item.IsScalar()) {
        items.push_back(Single(item, field, item_path));
      } else {
        warnings.push_back(absl::StrCat(item_path, ": \"", name.substr(0, 64),
                                        "\" is not available here (tensorboard is); ignored"));
      }
    }
    if (!one && !node.IsSequence()) errors.push_back(absl::StrCat(path, ": expected a name or a list of names"));
    return absl::StrCat("[", absl::StrJoin(items, ","), "]");
  }

  // HF takes fsdp as true/false, one string of options ("full_shard auto_wrap") or a list.
  std::string Fsdp(const YAML::Node& node, const FieldDescriptor* field, const std::string& path) {
    if (!node.IsScalar()) return Field(node, field, path, /*special=*/false);
    const std::string s = node.Scalar();
    if (Spend(s.size() + 4)) return "[]";
    bool on;
    if (ParseBool(s, &on)) return on ? "[\"full_shard\"]" : "[]";
    std::vector<std::string> items;
    for (absl::string_view option : absl::StrSplit(s, ' ', absl::SkipEmpty())) items.push_back(JsonQuote(std::string(option)));
    return absl::StrCat("[", absl::StrJoin(items, ","), "]");
  }

  std::string Field(const YAML::Node& node, const FieldDescriptor* field, const std::string& path,
                    bool special = true) {
    const bool hf_arguments = field->containing_type() == trainer::v1::TrainingArguments::descriptor();
    if (special && hf_arguments && field->name() == "report_to") return ReportTo(node, field, path);
    if (special && hf_arguments && field->name() == "fsdp") return Fsdp(node, field, path);
    if (field->is_repeated()) {
      if (!node.IsSequence()) {
        errors.push_back(absl::StrCat(path, ": expected a list"));
        return "[]";
      }
      std::vector<std::string> items;
      for (size_t i = 0; i < node.size(); ++i) {
        items.push_back(Single(node[i], field, absl::StrCat(path, "[", i, "]")));
      }
      return absl::StrCat("[", absl::StrJoin(items, ","), "]");
    }
    return Single(node, field, path);
  }

  std::string Single(const YAML::Node& node, const FieldDescriptor* field, const std::string& path) {
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      return Message(node, field->message_type(), path);
    }
    if (!node.IsScalar()) {
      errors.push_back(absl::StrCat(path, ": expected a single value"));
      return "null";
    }
    const std::string s = node.Scalar();
    if (Spend(s.size() + 2)) return "null";
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        return JsonQuote(s);
      case FieldDescriptor::CPPTYPE_BOOL: {
        bool b;
        if (ParseBool(s, &b)) return b ? "true" : "false";
        errors.push_back(absl::StrCat(path, ": expected true or false, got \"", s, "\""));
        return "false";
      }
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64:
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64: {
        long long v;
        if (ParseInt(s, &v)) return std::to_string(v);
        errors.push_back(absl::StrCat(path, ": expected an integer, got \"", s, "\""));
        return "0";
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT: {
        double v;
        if (ParseDouble(s, &v)) return JsonNumber(v);
        errors.push_back(absl::StrCat(path, ": expected a number, got \"", s, "\""));
        return "0";
      }
      default:
        errors.push_back(absl::StrCat(path, ": unsupported field type"));
        return "null";
    }
  }

  // Counts `bytes` of output against the bound; true (with the error, once) when the
  // document has grown past it and the conversion must stop.
  bool Spend(size_t bytes) {
    if (left_ < 0) return true;
    left_ -= static_cast<int64_t>(bytes);
    if (left_ >= 0) return false;
    errors.push_back(absl::StrCat("spec: expands to more than ", kMaxSpecBytes,
                                  " bytes (are YAML aliases (*name) repeating large parts?)"));
    return true;
  }

  int64_t left_ = static_cast<int64_t>(kMaxSpecBytes);

  static std::string JsonNumber(double v) {
    std::ostringstream os;
    os.precision(17);
    os << v;
    return os.str();
  }

  // Free-form values (google.protobuf.Struct): numbers and booleans keep their type.
  std::string Generic(const YAML::Node& node) {
    if (Spend(2) || !node || node.IsNull()) return "null";
    if (node.IsMap()) {
      std::vector<std::string> members;
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          errors.push_back("spec: a key inside a free-form value must be a plain word");
          return "null";
        }
        if (Spend(kv.first.Scalar().size() + 4)) return "null";
        members.push_back(absl::StrCat(JsonQuote(kv.first.Scalar()), ":", Generic(kv.second)));
      }
      return absl::StrCat("{", absl::StrJoin(members, ","), "}");
    }
    if (node.IsSequence()) {
      std::vector<std::string> items;
      for (const auto& item : node) items.push_back(Generic(item));
      return absl::StrCat("[", absl::StrJoin(items, ","), "]");
    }
    const std::string s = node.Scalar();
    if (Spend(s.size() + 2)) return "null";
    double d;
    bool b;
    if (node.Tag() != "!" && ParseDouble(s, &d)) return JsonNumber(d);
    if (node.Tag() != "!" && (s == "true" || s == "false")) {
      ParseBool(s, &b);
      return b ? "true" : "false";
    }
    return JsonQuote(s);
  }
};

absl::Status ApplyOverride(YAML::Node root, const std::string& override) {
  const size_t eq = override.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set ", override, ": expected dotted.path=value"));
  }
  const std::string key = override.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(override.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("--set ", key, ": ", e.msg));
  }
  std::vector<std::string> parts = absl::StrSplit(key, '.');
  // yaml-cpp nodes are handles: walk with reset() so that assignment does not overwrite
  // the parent node, only re-points the cursor.
  YAML::Node cursor;
  cursor.reset(root);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = cursor[parts[i]];
    if (next.IsDefined() && !next.IsNull() && !next.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--set ", key, ": ", parts[i], " is not a mapping"));
    }
    cursor.reset(next);
  }
  cursor[parts.back()] = value;
  return absl::OkStatus();
}

void ResolvePath(const std::filesystem::path& base, std::string* path) {
  // A user's uploaded file (user://USER/NAME) is resolved by trainerd, not here.
  if (path->empty() || absl::StartsWith(*path, kUserFileScheme)) return;
  std::filesystem::path p(*path);
  if (p.is_relative()) *path = (base / p).lexically_normal().string();
}

}  // namespace

namespace {

// HF's training_args.deepspeed may name a JSON file: read (from `base`, the spec file's
// folder, when the path is relative) into the spec, so that the spec carries the config
// itself to trainerd. Without a spec file (`base` null) the config must be inline.
absl::Status InlineDeepSpeedFile(YAML::Node& root, const std::filesystem::path* base) {
  if (!root.IsMap()) return absl::OkStatus();
  YAML::Node args = root["training_args"];
  if (!args || !args.IsMap()) return absl::OkStatus();
  YAML::Node deepspeed = args["deepspeed"];
  if (!deepspeed || !deepspeed.IsScalar()) return absl::OkStatus();
  constexpr char kField[] = "training_args.deepspeed";
  if (base == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        kField, ": give the DeepSpeed config itself (a file path is read from a spec file by trainer-cli and "
                "trainer-worker)"));
  }
  std::filesystem::path file = deepspeed.Scalar();
  if (file.is_relative()) file = (*base / file).lexically_normal();
  absl::StatusOr<std::string> text = ReadSpecFile(file.string());
  if (!text.ok()) return absl::Status(text.status().code(), absl::StrCat(kField, ": ", text.status().message()));
  YAML::Node config;
  try {
    config = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(kField, ": ", file.string(), " is not valid JSON: ", e.what()));
  }
  if (!config.IsMap()) return absl::InvalidArgumentError(absl::StrCat(kField, ": ", file.string(), " is not a JSON object"));
  args["deepspeed"] = config;
  return absl::OkStatus();
}

absl::StatusOr<trainer::v1::JobSpec> ParseSpecText(std::string_view text, const std::vector<std::string>& overrides,
                                                   std::vector<std::string>* warnings, const std::filesystem::path* base) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("spec: not valid YAML or JSON: ", e.what()));
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  for (const std::string& o : overrides) {
    absl::Status s = ApplyOverride(root, o);
    if (!s.ok()) return s;
  }
  if (absl::Status s = InlineDeepSpeedFile(root, base); !s.ok()) return s;
  YamlToJson converter;
  const std::string json =
      converter.Message(root, trainer::v1::JobSpec::descriptor(), /*path=*/"");
  if (!converter.errors.empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(converter.errors, "\n"));
  }
  if (warnings != nullptr) *warnings = std::move(converter.warnings);
  trainer::v1::JobSpec spec;
  auto status = google::protobuf::util::JsonStringToMessage(json, &spec);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("spec: ", status.ToString()));
  }
  return spec;
}

}  // namespace

absl::StatusOr<trainer::v1::JobSpec> ParseJobSpec(std::string_view text, const std::vector<std::string>& overrides,
                                                  std::vector<std::string>* warnings) {
  return ParseSpecText(text, overrides, warnings, nullptr);
}

absl::StatusOr<trainer::v1::JobSpec> ParseJobSpecAt(std::string_view text, const std::filesystem::path& base,
                                                    const std::vector<std::string>& overrides,
                                                    std::vector<std::string>* warnings) {
  absl::StatusOr<trainer::v1::JobSpec> spec = ParseSpecText(text, overrides, warnings, &base);
  if (!spec.ok()) return spec;
  auto* data = spec->mutable_data();
  for (auto* source : {data->mutable_train(), data->mutable_eval(), data->mutable_test()}) {
    ResolvePath(base, source->mutable_path());
    ResolvePath(base, source->mutable_labels_path());
  }
  ResolvePath(base, spec->mutable_model()->mutable_path());
  ResolvePath(base, spec->mutable_model()->mutable_name_or_path());
  return spec;
}

absl::StatusOr<trainer::v1::JobSpec> LoadJobSpecFile(const std::string& path, const std::vector<std::string>& overrides,
                                                     std::vector<std::string>* warnings) {
  absl::StatusOr<std::string> text = ReadSpecFile(path);
  if (!text.ok()) return text.status();
  return ParseJobSpecAt(*text, std::filesystem::absolute(path).parent_path(), overrides, warnings);
}

std::string JobSpecToJson(const trainer::v1::JobSpec& spec) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(spec, &out, options);
  return out;
}

}  // namespace trainerd
