// Trainer: saving, resuming and exporting checkpoints. Every stateful part of a run is
// registered once with the Checkpointer (BuildCheckpointer), its save beside its load.
//
// A checkpoint folder holds (HF's names where HF has one):
//   model.safetensors   parameters and buffers (a LoRA job: adapter_model.safetensors
//                       and adapter_config.json, never the frozen base)
//   optimizer.pt        optimizer state (LibTorch archive)        [not with save_only_model]
//                       (optimizer_<rank>.pt, each rank's shard, with optimizer_sharding)
//   scheduler.json      reduce_lr_on_plateau state                [not with save_only_model]
//   rng_state.pth       CPU (and CUDA) RNG states, a torch.load-able dict [not with save_only_model]
//                       (rng_state_<rank>.pth, one per rank, when several ranks train)
//   loop_state.json     data position and running sums            [not with save_only_model]
//   trainer_state.json  HF's TrainerState schema
//   training_args.json  the job spec as it ran
//   MANIFEST.json       sizes and checksums (CheckpointStore)
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/torch.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "spec/spec_loader.h"
#include "worker/checkpoint/checkpointer.h"
#include "worker/distributed/distributed.h"
#include "worker/checkpoint/optimizer_snapshot.h"
#include "spec/shard_size.h"
#include "worker/models/hf/hf_weights.h"
#include "worker/models/safetensors.h"
#include "worker/data/sentencepiece_model.h"
#include "worker/trainer/torch_status.h"
#include "worker/trainer/trainer.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string RngStateBytes() {
  c10::Dict<std::string, torch::Tensor> rng;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    rng.insert("cpu_rng_state", gen.get_state());
  }
  for (int64_t d = 0; d < static_cast<int64_t>(torch::cuda::device_count()); ++d) {
    auto gen = at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, d));
    std::lock_guard<std::mutex> lock(gen.mutex());
    rng.insert(absl::StrCat("cuda_rng_state_", d), gen.get_state());
  }
  std::vector<char> bytes = torch::jit::pickle_save(rng);
  return std::string(bytes.data(), bytes.size());
}

void LoadRngState(const std::string& bytes) {
  c10::IValue rng = torch::jit::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng.toGenericDict().at("cpu_rng_state").toTensor());
  }
  for (int64_t d = 0; d < static_cast<int64_t>(torch::cuda::device_count()); ++d) {
    const std::string key = absl::StrCat("cuda_rng_state_", d);
    if (!rng.toGenericDict().contains(key)) continue;
    auto gen = at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, d));
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng.toGenericDict().at(key).toTensor());
  }
}

}  // namespace

std::string Trainer::ResolveResumeCheckpoint() const {
  const std::string& r = args().resume_from_checkpoint();
  if (r.empty() || r == "false") return "";
  if (r != "true") {
    if (absl::Status s = CheckpointStore::Verify(r); !s.ok()) {
      throw std::invalid_argument(absl::StrCat("training_args.resume_from_checkpoint: ", s.message()));
    }
    return r;
  }
  auto latest = CheckpointStore::LatestValid(args().output_dir(), [](const std::string& warning) {
    spdlog::warn("{}; falling back to an older checkpoint", warning);
  });
  if (!latest.ok()) {
    throw std::invalid_argument(absl::StrCat("training_args.resume_from_checkpoint: ", latest.status().message()));
  }
  return *latest;
}

CheckpointFiles Trainer::ModelFiles() {
  CheckpointFiles files;
  const std::string prefix = model_->WeightsFilePrefix();
  const NamedTensors weights = model_->HfState();
  CheckWeightsToSave(weights);
  files.merge(EncodeWeightFiles(weights, MaxShardBytes(), prefix));
  // What was written must load back: an adapter folder that peft cannot read is a
  // failed save, not a successful one.
  auto decoded = DecodeWeightFiles(
      [&files](const std::string& name) -> const std::string* {
        auto it = files.find(name);
        return it == files.end() ? nullptr : &it->second;
      },
      prefix);
  if (!decoded.ok() || decoded->size() != weights.size()) {
    throw std::runtime_error(absl::StrCat("the saved ", prefix, " weights do not load back: ",
                                          decoded.ok() ? "tensors are missing" : decoded.status().message()));
  }
  if (model_->HasTorchScript()) {
    std::ostringstream script;
    model_->SaveTorchScript(script);
    files["model.pt"] = script.str();
  }
  if (prefix == "model") {  // an adapter's state dict would pass for the model's
    std::vector<char> state_dict = SerializeStateDict(*model_);
    files["model_state_dict.pt"] = std::string(state_dict.data(), state_dict.size());
  }
  files.merge(model_->MergedFolderFiles(MaxShardBytes()));
  files.merge(RunFiles());
  return files;
}

void Trainer::CheckWeightsToSave(const NamedTensors& weights) const {
  // peft's classic failure: an adapter file with no tensors after a "successful" run.
  if (weights.empty()) {
    throw std::runtime_error(absl::StrCat("nothing to save: the model has no ", model_->WeightsFilePrefix(),
                                          " tensors"));
  }
}

CheckpointFiles Trainer::RunFiles() const {
  CheckpointFiles files = {{"training_args.json", JobSpecToJson(spec_)}};
  if (data_.tokenizer) files["tokenizer.model"] = data_.tokenizer->Serialized();
  // With the weights under transformers' names, config.json (and the generation and
  // tokenizer configs) make a folder that from_pretrained loads.
  files.merge(model_->HfFolderFiles());
  return files;
}

void Trainer::BuildCheckpointer() {
  if (checkpointer_) return;
  checkpointer_ = std::make_unique<Checkpointer>();
  using Scope = Checkpointer::Scope;
  // The weights: copied now, encoded on the writer thread. Only rank 0 writes them.
  checkpointer_->Add(std::make_unique<StatefulFunctions>(
                         [this](CheckpointContents& out) {
                           if (!is_world_process_zero()) return;
                           torch::NoGradGuard no_grad;
                           auto weights = std::make_shared<NamedTensors>();
                           // Under transformers' names (peft's for an adapter): a checkpoint is a folder
                           // from_pretrained loads.
                           for (auto& [name, t] : model_->HfState()) weights->emplace_back(name, t.detach().clone());
                           CheckWeightsToSave(*weights);
                           // One file, or save_pretrained's shards and index.
                           const std::string prefix = model_->WeightsFilePrefix();
                           const std::vector<WeightShard> shards = PlanWeightShards(*weights, MaxShardBytes(), prefix);
                           for (const WeightShard& shard : shards) {
                             out.PutLater(shard.file, [weights, tensors = shard.tensors] {
                               NamedTensors part;
                               for (size_t k : tensors) part.push_back((*weights)[k]);
                               return EncodeSafetensors(part, {{"format", "pt"}});
                             });
                           }
                           if (shards.size() > 1) {
                             out.Put(prefix + ".safetensors.index.json", WeightIndexJson(*weights, shards));
                           }
                         },
                         [this](const CheckpointContents& in) {
                           LoadModelWeights([&in](const std::string& name) -> const std::string* {
                             return in.Has(name) ? &in.Need(name) : nullptr;
                           });
                         }),
                     Scope::kModel);
  // What the run was (read by people and by HF tools, never loaded back).
  checkpointer_->Add(std::make_unique<StatefulFunctions>(
                         [this](CheckpointContents& out) {
                           for (auto& [name, bytes] : RunFiles()) out.Put(name, std::move(bytes));
                         },
                         [](const CheckpointContents&) {}),
                     Scope::kModel);
  // HF's TrainerState, with the stateful callbacks' states inside.
  checkpointer_->Add(std::make_unique<StatefulFunctions>(
                         [this](CheckpointContents& out) {
                           state_.stateful_callbacks.clear();
                           for (const auto& cb : callbacks_.callbacks()) {
                             if (!cb->stateful_name().empty()) {
                               state_.stateful_callbacks[cb->stateful_name()] = cb->SaveState();
                             }
                           }
                           out.Put(kTrainerStateFile, TrainerStateToJson(state_));
                         },
                         [this](const CheckpointContents& in) { LoadTrainerState(in); }),
                     Scope::kModel);
  // The loop's position and running sums (first of the training parts: it checks that
  // the checkpoint fits this run before the others load).
  checkpointer_->Add(std::make_unique<StatefulFunctions>([this](CheckpointContents& out) { SaveLoopState(out); },
                                                         [this](const CheckpointContents& in) { LoadLoopState(in); }),
                     Scope::kTraining);
  if (loss_scaler_) checkpointer_->Add(loss_scaler_.get(), Scope::kTraining);
  // Each rank's RNG states.
  checkpointer_->Add(std::make_unique<StatefulFunctions>(
                         [this](CheckpointContents& out) {
                           if (world_size() == 1) return out.Put("rng_state.pth", RngStateBytes());
                           std::vector<std::string> states = distributed_->AllGatherBytes(RngStateBytes());
                           for (size_t r = 0; r < states.size(); ++r) {
                             out.Put(absl::StrCat("rng_state_", r, ".pth"), states[r]);
                           }
                         },
                         [this](const CheckpointContents& in) {
                           LoadRngState(in.Need(world_size() > 1 ? absl::StrCat("rng_state_", distributed_->rank(), ".pth")
                                                                 : "rng_state.pth"));
                         }),
                     Scope::kTraining);
  checkpointer_->Add(std::make_unique<StatefulFunctions>([this](CheckpointContents& out) { SaveOptimizerState(out); },
                                                         [this](const CheckpointContents& in) { LoadOptimizerState(in); }),
                     Scope::kTraining);
  checkpointer_->Add(lr_schedule_.get(), Scope::kTraining);
}

void Trainer::SaveOptimizerState(CheckpointContents& out) {
  if (ShardsOptimizer()) {
    // Each rank's shard of the optimizer state, in its own file.
    std::vector<std::string> shards = distributed_->AllGatherBytes(SerializeOptimizer(*optimizer_));
    for (size_t r = 0; r < shards.size(); ++r) out.Put(absl::StrCat("optimizer_", r, ".pt"), shards[r]);
    return;
  }
  if (!is_world_process_zero()) return;
  std::shared_ptr<torch::optim::Optimizer> copy = SnapshotOptimizer(args(), model_->NamedParameters(), *optimizer_);
  if (!copy) return out.Put("optimizer.pt", SerializeOptimizer(*optimizer_));  // a kind it cannot copy: now
  out.PutLater("optimizer.pt", [copy] { return SerializeOptimizer(*copy); });
}

void Trainer::LoadOptimizerState(const CheckpointContents& in) {
  const int rank = distributed_ == nullptr ? 0 : distributed_->rank();
  std::istringstream bytes(in.Need(ShardsOptimizer() ? absl::StrCat("optimizer_", rank, ".pt") : "optimizer.pt"));
  torch::serialize::InputArchive archive;
  archive.load_from(bytes, device_);
  optimizer_->load(archive);
}

void Trainer::SaveLoopState(CheckpointContents& out) {
  // The running loss sums become the ranks' means, so that rank 0's loop_state.json
  // holds the job's; later sums stay right because the mean is linear.
  loop_.loss_since_log = MeanAcrossRanks(loop_.loss_since_log);
  loop_.total_loss = MeanAcrossRanks(loop_.total_loss);
  nlohmann::json& loop = out.Json(kTrainingStateFile);
  loop["world_size"] = world_size();
  loop["optimizer_sharding"] = ShardsOptimizer();
  loop["epoch"] = loop_.epoch;
  loop["batches_done"] = loop_.batches_done;
  loop["loss_since_log"] = loop_.loss_since_log;
  loop["last_logged_step"] = loop_.last_logged_step;
  loop["total_loss"] = loop_.total_loss;
  loop["total_samples"] = loop_.total_samples;
}

void Trainer::LoadLoopState(const CheckpointContents& in) {
  const json& loop = in.NeedJson(kTrainingStateFile);
  const int64_t saved_world = loop.value("world_size", int64_t{1});
  if (saved_world != world_size()) {
    // Each rank's data position and RNG state belong to the sharding they were saved
    // with; carrying them to another world size would silently change the data order.
    throw std::invalid_argument(absl::StrCat(
        "training_args.resume_from_checkpoint: ", in.dir(), " was saved by ", saved_world, " rank(s) and this run has ",
        world_size(), "; resume it with ", saved_world, " rank(s) (resources.ranks), or start over from its weights"
        " with a new output_dir"));
  }
  if (loop.value("optimizer_sharding", false) != ShardsOptimizer()) {
    throw std::invalid_argument(absl::StrCat("training_args.optimizer_sharding: ", in.dir(), " was saved ",
                                             ShardsOptimizer() ? "without" : "with",
                                             " it; resume with the same setting"));
  }
  loop_.epoch = loop.at("epoch").get<int64_t>();
  loop_.batches_done = loop.at("batches_done").get<int64_t>();
  loop_.loss_since_log = loop.at("loss_since_log").get<double>();
  loop_.last_logged_step = loop.at("last_logged_step").get<int64_t>();
  loop_.total_loss = loop.at("total_loss").get<double>();
  loop_.total_samples = loop.at("total_samples").get<int64_t>();
}

void Trainer::LoadTrainerState(const CheckpointContents& in) {
  auto saved = TrainerStateFromJson(in.Need(kTrainerStateFile));
  if (!saved.ok()) in.Corrupt(std::string(saved.status().message()));
  state_.global_step = saved->global_step;
  state_.epoch = saved->epoch;
  state_.log_history = saved->log_history;
  state_.best_metric = saved->best_metric;
  state_.best_global_step = saved->best_global_step;
  state_.best_model_checkpoint = saved->best_model_checkpoint;
  for (const auto& cb : callbacks_.callbacks()) {
    auto it = saved->stateful_callbacks.find(cb->stateful_name());
    if (!cb->stateful_name().empty() && it != saved->stateful_callbacks.end()) cb->LoadState(it->second);
  }
}

int64_t Trainer::MaxShardBytes() const {
  if (max_shard_bytes_) return *max_shard_bytes_;
  if (model_->HfFolderFiles().empty()) return *(max_shard_bytes_ = std::numeric_limits<int64_t>::max());
  const std::string& size = spec_.model().max_shard_size();
  absl::StatusOr<int64_t> bytes = ParseShardSize(size.empty() ? kDefaultMaxShardSize : size);
  if (!bytes.ok()) throw std::invalid_argument(std::string(bytes.status().message()));
  return *(max_shard_bytes_ = *bytes);
}

void Trainer::LoadModelWeights(const std::function<const std::string*(const std::string&)>& file) {
  auto decoded = DecodeWeightFiles(file, model_->WeightsFilePrefix());
  if (!decoded.ok()) throw std::invalid_argument(std::string(decoded.status().message()));
  const std::map<std::string, torch::Tensor> by_name =
      model_->FromHfNames(std::map<std::string, torch::Tensor>(decoded->begin(), decoded->end()));
  NamedTensors targets = model_->NamedState();
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw std::invalid_argument(absl::StrCat("weights: no tensor named ", name));
    if (it->second.sizes() != target.sizes()) {
      throw std::invalid_argument(absl::StrCat("weights: ", name, " has shape ", c10::str(it->second.sizes()),
                                               ", the model has ", c10::str(target.sizes())));
    }
    target.copy_(it->second);
  }
}

void Trainer::LoadCheckpoint(const std::string& dir) {
  auto files = CheckpointStore::Read(dir);
  if (!files.ok()) throw std::invalid_argument(std::string(files.status().message()));
  BuildCheckpointer();
  if (!checkpointer_->Load(CheckpointContents(dir, *std::move(files)))) {
    spdlog::warn("{} was saved with save_only_model: optimizer, scheduler and RNG state start fresh", dir);
    loop_ = LoopState{};
  }
}

void Trainer::SaveCheckpoint() {
  const std::string output_dir = args().output_dir();
  const std::string dir = (fs::path(output_dir) / absl::StrCat(kCheckpointPrefix, state_.global_step)).string();
  if (state_.best_global_step && *state_.best_global_step == state_.global_step) {
    state_.best_model_checkpoint = dir;
  }
  std::set<std::string> keep;
  if (state_.best_model_checkpoint) keep.insert(*state_.best_model_checkpoint);
  if (!resumed_from_.empty()) keep.insert(resumed_from_);

  // The loop is blocked only while the parts copy their state; encoding, writing, fsync
  // and exports run on the store's writer thread. Every rank saves (parts hold
  // collectives); only rank 0's contents are written.
  BuildCheckpointer();
  auto contents = std::make_shared<CheckpointContents>(checkpointer_->Save(args().save_only_model()));
  // Rank 0 writes every rank's part in one folder, which appears (renamed) only once
  // all parts are on disk: a checkpoint is complete for all ranks or not there at all.
  if (!is_world_process_zero()) return;
  if (!checkpoint_store_) {
    checkpoint_store_ = std::make_unique<CheckpointStore>(output_dir, args().save_total_limit());
  }
  auto produce = [contents]() -> absl::StatusOr<CheckpointFiles> {
    return RunGuarded<CheckpointFiles>("encoding a checkpoint", [&] { return contents->Encode(); });
  };
  const std::string strategy = args().hub_strategy();
  const bool export_to_hub = !args().hub_dir().empty() && strategy != "end";
  const Progress progress = CurrentProgress();
  CheckpointDone on_done = [this, progress, dir, strategy, export_to_hub, prefix = model_->WeightsFilePrefix()](
                              const absl::Status& s, const CheckpointFiles& files) {
      if (!s.ok()) return;
      // Tells whoever reads the JSON log (trainerd) that this checkpoint is on disk.
      double bytes = 0;
      for (const auto& [name, contents] : files) bytes += static_cast<double>(contents.size());
      training_log_->Record("checkpoint", progress, {{"size_bytes", bytes}}, {{"path", dir}});
      if (!export_to_hub) return;
      const int64_t step = progress.step;
      // Between saves the registry gets the weights (model.safetensors, or its shards and
      // index) and the run's files; model.pt and model_state_dict.pt join them in the
      // export at the end (save_model).
      static const std::set<std::string> kRunFiles = {
          "training_args.json",    "tokenizer.model",         "config.json",          "generation_config.json",
          "tokenizer_config.json", "special_tokens_map.json", "adapter_config.json", "vocab.txt"};
      CheckpointFiles model_files;
      for (const auto& [name, bytes] : files) {
        const bool weights = absl::StartsWith(name, prefix) &&
                             (absl::EndsWith(name, ".safetensors") || absl::EndsWith(name, ".index.json"));
        if (weights || kRunFiles.count(name)) model_files[name] = bytes;
      }
      ExportToHub("model", model_files);
      if (strategy == "checkpoint") ExportToHub("last-checkpoint", files);
      if (strategy == "all_checkpoints") ExportToHub(absl::StrCat(kCheckpointPrefix, step), files);
    };
  auto saved = checkpoint_store_->Save(state_.global_step, produce, keep, on_done);
  if (!saved.ok()) throw StatusError(saved.status());  // e.g. RESOURCE_EXHAUSTED for a full disk
  spdlog::info("Saving checkpoint {} (written in the background)", *saved);
}

void Trainer::ExportToHub(const std::string& name, const CheckpointFiles& files) const {
  const fs::path dest = fs::path(args().hub_dir()) / args().hub_model_id() / name;
  std::error_code ec;
  fs::create_directories(dest.parent_path(), ec);
  absl::Status s = CheckpointStore::WriteFolder(dest.string(), files);
  if (!s.ok()) {
    spdlog::error("export to {} failed: {}", dest.string(), std::string(s.message()));
  } else {
    spdlog::info("Exported {} to {}", name, dest.string());
  }
}

}  // namespace trainerd
