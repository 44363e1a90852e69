#include "worker/checkpoint/checkpointer.h"

#include "absl/strings/str_cat.h"

namespace trainerd {

nlohmann::json& CheckpointContents::Json(const std::string& name) {
  auto it = json_.find(name);
  if (it == json_.end()) it = json_.emplace(name, nlohmann::json::object()).first;
  return it->second;
}

CheckpointFiles CheckpointContents::Encode(bool all) const {
  CheckpointFiles files;
  if (all) {
    files = files_;
    for (const auto& [name, value] : json_) files[name] = value.dump(2);
  }
  for (const Deferred& d : deferred_) {
    if (all || d.rank_file) files[d.name] = d.encode();
  }
  return files;
}

void CheckpointContents::Corrupt(const std::string& what) const {
  throw std::invalid_argument(absl::StrCat("checkpoint ", dir_, ": ", what));
}

const std::string& CheckpointContents::Need(const std::string& name) const {
  auto it = files_.find(name);
  if (it == files_.end()) Corrupt(name + " is missing");
  return it->second;
}

const nlohmann::json& CheckpointContents::NeedJson(const std::string& name) const {
  auto cached = json_.find(name);
  if (cached != json_.end()) return cached->second;
  nlohmann::json parsed = nlohmann::json::parse(Need(name), nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) Corrupt(name + " is not a JSON object");
  return json_.emplace(name, std::move(parsed)).first->second;
}

void Checkpointer::Add(std::unique_ptr<Stateful> part, Scope scope) {
  Add(part.get(), scope);
  owned_.push_back(std::move(part));
}

CheckpointContents Checkpointer::Save(bool save_only_model) {
  CheckpointContents out;
  for (const Part& p : parts_) {
    if (p.scope == Scope::kModel || !save_only_model) p.part->SaveState(out);
  }
  return out;
}

bool Checkpointer::Load(const CheckpointContents& in) {
  const bool training = in.Has(kTrainingStateFile);
  for (const Part& p : parts_) {
    if (p.scope == Scope::kModel || training) p.part->LoadState(in);
  }
  return training;
}

}  // namespace trainerd
