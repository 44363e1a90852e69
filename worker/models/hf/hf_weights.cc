#include "worker/models/hf/hf_weights.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/match.h"
#include "worker/models/deferred_weights.h"
#include "worker/models/safetensors.h"
#include "spec/confined_file.h"

namespace trainerd {
namespace {

using nlohmann::json;

// The shards model.safetensors.index.json (`text`, from `where`) names, each a plain file
// name in the folder, with the tensors it lists in each.
absl::StatusOr<std::map<std::string, std::vector<std::string>>> ParseIndex(const std::string& text,
                                                                          const std::string& where) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    return absl::DataLossError(where + ": has no weight_map object");
  }
  std::map<std::string, std::vector<std::string>> tensors_by_shard;
  for (const auto& [tensor, shard] : j["weight_map"].items()) {
    if (!shard.is_string()) return absl::DataLossError(absl::StrCat(where, ": weight_map.", tensor, ": not a file name"));
    const std::string name = shard.get<std::string>();
    if (name.empty() || absl::StrContains(name, "/") || name == "." || name == ".." ||
        !absl::EndsWith(name, ".safetensors")) {
      return absl::DataLossError(absl::StrCat(where, ": weight_map.", tensor,
                                              ": must name a .safetensors file in the folder"));
    }
    tensors_by_shard[name].push_back(tensor);
  }
  return tensors_by_shard;
}

}  // namespace

HfWeightsFolder::~HfWeightsFolder() {
  for (const Mapping& m : mappings_) ::munmap(const_cast<char*>(m.bytes.data()), m.bytes.size());
}

absl::StatusOr<std::unique_ptr<HfWeightsFolder>> HfWeightsFolder::Open(const std::string& dir) {
  std::map<std::string, std::vector<std::string>> shards;
  struct stat st {};
  if (::stat((dir + "/model.safetensors").c_str(), &st) == 0) {
    shards["model.safetensors"] = {};
  } else if (::stat((dir + "/model.safetensors.index.json").c_str(), &st) == 0) {
    const std::string path = dir + "/model.safetensors.index.json";
    absl::StatusOr<std::string> text = ReadConfined(path, 64 << 20);
    if (!text.ok()) return text.status();
    absl::StatusOr<std::map<std::string, std::vector<std::string>>> index = ParseIndex(*text, path);
    if (!index.ok()) return index.status();
    shards = *std::move(index);
  } else {
    return absl::NotFoundError(
        absl::StrCat(dir, ": has neither model.safetensors nor model.safetensors.index.json (only safetensors "
                     "weights are read; convert pytorch_model.bin with transformers' save_pretrained)"));
  }
  std::unique_ptr<HfWeightsFolder> folder(new HfWeightsFolder());
  for (const auto& [shard, listed] : shards) {
    const std::string path = dir + "/" + shard;
    if (absl::Status s = folder->Map(path); !s.ok()) return s;
    absl::StatusOr<std::vector<SafetensorsEntry>> entries = ParseSafetensors(folder->mappings_.back().bytes);
    if (!entries.ok()) return absl::Status(entries.status().code(), absl::StrCat(path, ": ", entries.status().message()));
    for (SafetensorsEntry& entry : *entries) {
      if (folder->by_name_.count(entry.name)) {
        return absl::DataLossError(absl::StrCat(path, ": ", entry.name, " is in another file of the folder too"));
      }
      folder->by_name_[entry.name] = folder->tensors_.size();
      folder->names_.push_back(entry.name);
      folder->tensors_.push_back({folder->mappings_.size() - 1, std::move(entry)});
    }
    for (const std::string& name : listed) {
      if (!folder->by_name_.count(name)) {
        return absl::DataLossError(absl::StrCat(path, ": lacks ", name, ", which the index puts there"));
      }
    }
  }
  return folder;
}

absl::Status HfWeightsFolder::Map(const std::string& path) {
  // Mapped rather than read: a shard of a large model is gigabytes, and the page cache
  // already holds it.
  absl::StatusOr<ConfinedFile> file = OpenConfined(path);
  if (!file.ok()) return file.status();
  struct stat st {};
  if (::fstat(file->fd(), &st) != 0 || !S_ISREG(st.st_mode)) return absl::InvalidArgumentError(path + ": not a file");
  if (st.st_size == 0) return absl::DataLossError(path + ": empty");
  void* mapped = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, file->fd(), 0);
  if (mapped == MAP_FAILED) return absl::DataLossError(absl::StrCat(path, ": cannot map: ", std::strerror(errno)));
  mappings_.push_back({path, absl::string_view(static_cast<const char*>(mapped), static_cast<size_t>(st.st_size))});
  return absl::OkStatus();
}

const SafetensorsEntry* HfWeightsFolder::Find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second].entry;
}

torch::Tensor HfWeightsFolder::Read(const std::string& name, torch::ScalarType dtype) const {
  const Located& t = tensors_.at(by_name_.at(name));
  const char* data = mappings_[t.mapping].bytes.data() + t.entry.begin;
  // Copied out of the mapping (from_blob only borrows it).
  torch::Tensor out = torch::from_blob(const_cast<char*>(data), t.entry.shape,
                                       torch::TensorOptions().dtype(t.entry.dtype)).clone();
  return out.is_floating_point() ? out.to(dtype) : out;
}

absl::Status HfWeightsFolder::ReadSlice(const std::string& name, int64_t begin, torch::Tensor out) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return absl::NotFoundError(absl::StrCat(name, ": not in the folder"));
  const Located& t = tensors_[it->second];
  const size_t element = c10::elementSize(t.entry.dtype);
  const int64_t numel = static_cast<int64_t>((t.entry.end - t.entry.begin) / element);
  if (begin < 0 || out.dim() != 1 || begin + out.numel() > numel) {
    return absl::OutOfRangeError(absl::StrCat(name, ": elements [", begin, ", ", begin + out.numel(),
                                              ") are outside its ", numel));
  }
  const char* data = mappings_[t.mapping].bytes.data() + t.entry.begin + static_cast<uint64_t>(begin) * element;
  torch::NoGradGuard no_grad;
  out.copy_(torch::from_blob(const_cast<char*>(data), {out.numel()}, torch::TensorOptions().dtype(t.entry.dtype)));
  return absl::OkStatus();
}

absl::StatusOr<NamedTensors> ReadHfWeights(const std::string& dir, torch::ScalarType dtype) {
  absl::StatusOr<std::unique_ptr<HfWeightsFolder>> folder = HfWeightsFolder::Open(dir);
  if (!folder.ok()) return folder.status();
  NamedTensors out;
  for (const std::string& name : (*folder)->names()) out.emplace_back(name, (*folder)->Read(name, dtype));
  return out;
}

absl::StatusOr<WeightsReport> AssignHfWeights(const NamedTensors& params, const NamedTensors& loaded,
                                              const std::set<std::string>& may_be_missing,
                                              const std::set<std::string>& may_be_unused) {
  auto starts_with_one = [](const std::string& name, const std::set<std::string>& prefixes) {
    for (const std::string& p : prefixes) {
      if (absl::StartsWith(name, p)) return true;
    }
    return false;
  };
  std::map<std::string, torch::Tensor> by_name(loaded.begin(), loaded.end());
  WeightsReport report;
  std::vector<std::string> missing, unexpected, mismatched;
  std::set<std::string> used;
  for (const auto& [name, target] : params) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      (starts_with_one(name, may_be_missing) ? report.newly_initialized : missing).push_back(name);
      continue;
    }
    used.insert(name);
    if (it->second.sizes() != target.sizes()) {
      if (starts_with_one(name, may_be_missing)) {
        report.resized.push_back(absl::StrCat(name, ": found shape ", c10::str(it->second.sizes()),
                                              " in the checkpoint and ", c10::str(target.sizes()), " in the model"));
        by_name.erase(it);  // not copied: the model's initialisation stays
        continue;
      }
      mismatched.push_back(absl::StrCat(name, " (the folder has ", c10::str(it->second.sizes()), ", the model ",
                                        c10::str(target.sizes()), ")"));
    }
  }
  for (const auto& [name, t] : loaded) {
    if (used.count(name)) continue;
    (starts_with_one(name, may_be_unused) ? report.unused : unexpected).push_back(name);
  }
  std::vector<std::string> problems;
  if (!missing.empty()) problems.push_back("missing tensors: " + absl::StrJoin(missing, ", "));
  if (!unexpected.empty()) problems.push_back("unexpected tensors: " + absl::StrJoin(unexpected, ", "));
  if (!mismatched.empty()) problems.push_back("shape mismatches: " + absl::StrJoin(mismatched, ", "));
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "; "));
  torch::NoGradGuard no_grad;
  for (const auto& [name, target] : params) {
    auto it = by_name.find(name);
    // A parameter without data is read later, in slices (deferred_weights.h).
    if (it != by_name.end() && HasData(target)) target.copy_(it->second);
  }
  return report;
}

std::vector<WeightShard> PlanWeightShards(const NamedTensors& weights, int64_t max_shard_bytes,
                                          const std::string& prefix) {
  std::vector<WeightShard> shards;
  int64_t in_shard = 0;
  for (size_t k = 0; k < weights.size(); ++k) {
    const int64_t bytes = weights[k].second.numel() * static_cast<int64_t>(weights[k].second.element_size());
    if (shards.empty() || (in_shard + bytes > max_shard_bytes && !shards.back().tensors.empty())) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().tensors.push_back(k);
    in_shard += bytes;
  }
  if (shards.size() <= 1) {
    if (shards.empty()) shards.emplace_back();
    shards[0].file = prefix + ".safetensors";
    return shards;
  }
  char name[64];
  for (size_t i = 0; i < shards.size(); ++i) {
    std::snprintf(name, sizeof(name), "-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    shards[i].file = prefix + name;
  }
  return shards;
}

std::string WeightIndexJson(const NamedTensors& weights, const std::vector<WeightShard>& shards) {
  json map = json::object();
  int64_t total = 0;
  for (const WeightShard& shard : shards) {
    for (size_t k : shard.tensors) {
      map[weights[k].first] = shard.file;
      total += weights[k].second.numel() * static_cast<int64_t>(weights[k].second.element_size());
    }
  }
  return json{{"metadata", {{"total_size", total}}}, {"weight_map", map}}.dump(2) + "\n";
}

std::map<std::string, std::string> EncodeWeightFiles(const NamedTensors& weights, int64_t max_shard_bytes,
                                                     const std::string& prefix) {
  std::map<std::string, std::string> files;
  const std::vector<WeightShard> shards = PlanWeightShards(weights, max_shard_bytes, prefix);
  for (const WeightShard& shard : shards) {
    NamedTensors part;
    for (size_t k : shard.tensors) part.push_back(weights[k]);
    files[shard.file] = EncodeSafetensors(part, {{"format", "pt"}});
  }
  if (shards.size() > 1) files[prefix + ".safetensors.index.json"] = WeightIndexJson(weights, shards);
  return files;
}

absl::StatusOr<NamedTensors> DecodeWeightFiles(const std::function<const std::string*(const std::string&)>& file,
                                               const std::string& prefix) {
  const std::string whole_name = prefix + ".safetensors", index_name = prefix + ".safetensors.index.json";
  if (const std::string* whole = file(whole_name)) return DecodeSafetensors(*whole);
  const std::string* index = file(index_name);
  if (index == nullptr) return absl::NotFoundError(absl::StrCat("neither ", whole_name, " nor ", index_name));
  absl::StatusOr<std::map<std::string, std::vector<std::string>>> shards = ParseIndex(*index, index_name);
  if (!shards.ok()) return shards.status();
  NamedTensors out;
  for (const auto& [shard, listed] : *shards) {
    const std::string* bytes = file(shard);
    if (bytes == nullptr) return absl::DataLossError(absl::StrCat(shard, ": listed in the index, not present"));
    absl::StatusOr<NamedTensors> part = DecodeSafetensors(*bytes);
    if (!part.ok()) return absl::Status(part.status().code(), absl::StrCat(shard, ": ", part.status().message()));
    for (auto& named : *part) out.push_back(std::move(named));
  }
  return out;
}

absl::StatusOr<torch::ScalarType> HfDtype(const std::string& name, const std::string& folder_dtype) {
  // As from_pretrained: float32 unless asked; "auto" is the dtype the folder was saved in.
  const std::string n = name == "auto" ? folder_dtype : name;
  if (n == "float32" || n.empty()) return torch::kFloat;
  if (n == "bfloat16") return torch::kBFloat16;
  if (n == "float16") return torch::kHalf;
  return absl::InvalidArgumentError(absl::StrCat("model.torch_dtype: \"", n,
                                                 "\" is not one of float32, bfloat16, float16, auto"));
}

}  // namespace trainerd
