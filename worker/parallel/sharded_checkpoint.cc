#include "worker/parallel/sharded_checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/models/safetensors.h"

namespace trainerd {
namespace {

using nlohmann::json;

json ParamsOf(const FlatParameter& flat) {
  json params = json::array();
  for (const auto& [name, p] : flat.params()) params.push_back({name, p.sizes().vec()});
  return params;
}

}  // namespace

std::string ShardFileName(const std::string& kind, int rank, int world_size) {
  return absl::StrFormat("fsdp_shards/%s-rank-%05d-of-%05d.safetensors", kind, rank, world_size);
}

void WriteShardedIndex(CheckpointContents& out, const NamedFlats& flats,
                       int world_size, const std::string& kind) {
  json& index = out.Json(kShardedIndexFile);
  index["format"] = 1;
  index["world_size"] = world_size;
  json list = json::array();
  for (const auto& [name, flat] : flats) {
    list.push_back({{"name", name},
                    {"numel", flat->numel()},
                    {"dtype", std::string(c10::toString(flat->shard().scalar_type()))},
                    {"params", ParamsOf(*flat)}});
  }
  index["flats"] = std::move(list);
  index[kind] = true;
}

ShardedCheckpointReader::ShardedCheckpointReader(const CheckpointContents& in, std::string kind)
    : in_(in), kind_(std::move(kind)) {
  const json& index = in.NeedJson(kShardedIndexFile);
  if (!index.value(kind_, false)) in.Corrupt(absl::StrCat(kShardedIndexFile, " says no ", kind_, " shards were saved"));
  try {
    world_size_ = index.at("world_size").get<int>();
    for (const json& flat : index.at("flats")) {
      const std::string name = flat.at("name").get<std::string>();
      numel_[name] = flat.at("numel").get<int64_t>();
      params_[name] = flat.at("params");
    }
  } catch (const json::exception& e) {
    in.Corrupt(absl::StrCat(kShardedIndexFile, ": ", e.what()));
  }
  if (world_size_ < 1 || world_size_ > 65536) in.Corrupt(absl::StrCat(kShardedIndexFile, ": bad world_size"));
}

void ShardedCheckpointReader::CheckLayout(const std::string& name, const FlatParameter& flat) const {
  auto it = params_.find(name);
  if (it == params_.end() || numel_.at(name) != flat.numel() || it->second != ParamsOf(flat)) {
    in_.Corrupt(absl::StrCat(kShardedIndexFile, ": the flat buffer ", name,
                             " was saved with other parameters than this model has (another model, another "
                             "transformer_layer_cls_to_wrap, or other trainable parameters)"));
  }
}

const std::map<std::string, torch::Tensor>& ShardedCheckpointReader::RankFile(int rank) {
  auto cached = files_.find(rank);
  if (cached != files_.end()) return cached->second;
  const std::string name = ShardFileName(kind_, rank, world_size_);
  std::ifstream file(std::filesystem::path(in_.dir()) / name, std::ios::binary);
  if (!file) in_.Corrupt(name + " is missing");
  std::ostringstream bytes;
  bytes << file.rdbuf();
  auto decoded = DecodeSafetensors(bytes.str());
  if (!decoded.ok()) in_.Corrupt(absl::StrCat(name, ": ", decoded.status().message()));
  return files_[rank] = std::map<std::string, torch::Tensor>(decoded->begin(), decoded->end());
}

torch::Tensor ShardedCheckpointReader::Slice(const std::string& name, const std::string& key, int64_t start,
                                             int64_t length, c10::ScalarType dtype) {
  auto size = numel_.find(name);
  if (size == numel_.end()) in_.Corrupt(absl::StrCat(kShardedIndexFile, " has no flat buffer ", name));
  const std::string tensor = key.empty() ? name : absl::StrCat(name, ".", key);
  const int64_t saved_shard = (size->second + world_size_ - 1) / world_size_;
  torch::Tensor out = torch::zeros({length}, dtype);
  const int64_t end = std::min(start + length, saved_shard * world_size_);
  for (int64_t at = start; at < end;) {
    const int rank = static_cast<int>(at / saved_shard);
    const int64_t stop = std::min(end, (rank + 1) * saved_shard);
    const std::map<std::string, torch::Tensor>& file = RankFile(rank);
    auto it = file.find(tensor);
    if (it == file.end()) {
      if (at == start && !key.empty()) return {};  // state this buffer never had
      in_.Corrupt(absl::StrCat(ShardFileName(kind_, rank, world_size_), " has no tensor ", tensor));
    }
    if (it->second.numel() != saved_shard) {
      in_.Corrupt(absl::StrCat(ShardFileName(kind_, rank, world_size_), ": ", tensor, " has ", it->second.numel(),
                               " elements, not ", saved_shard));
    }
    out.narrow(0, at - start, stop - at).copy_(it->second.reshape({-1}).narrow(0, at - rank * saved_shard, stop - at));
    at = stop;
  }
  return out;
}

torch::Tensor ShardedCheckpointReader::FirstRank(const std::string& key) {
  const std::map<std::string, torch::Tensor>& file = RankFile(0);
  auto it = file.find(key);
  return it == file.end() ? torch::Tensor() : it->second;
}

}  // namespace trainerd
