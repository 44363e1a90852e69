// Trainer: saving, resuming and exporting checkpoints.
//
// A checkpoint folder holds (HF's names where HF has one):
//   model.safetensors   parameters and buffers
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
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "proto/spec/spec_loader.h"
#include "worker/distributed.h"
#include "worker/optimizer_snapshot.h"
#include "worker/safetensors.h"
#include "worker/sentencepiece_model.h"
#include "worker/torch_status.h"
#include "worker/trainer.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Errors found in a checkpoint's contents are bad input, not bugs.
[[noreturn]] void Corrupt(const std::string& dir, const std::string& what) {
  throw std::invalid_argument(absl::StrCat("checkpoint ", dir, ": ", what));
}

const std::string& Need(const CheckpointFiles& files, const std::string& dir, const std::string& name) {
  auto it = files.find(name);
  if (it == files.end()) Corrupt(dir, name + " is missing");
  return it->second;
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
  files["model.safetensors"] = EncodeSafetensors(model_->NamedState(), {{"format", "pt"}});
  std::ostringstream script;
  model_->SaveTorchScript(script);
  files["model.pt"] = script.str();
  std::vector<char> state_dict = SerializeStateDict(*model_);
  files["model_state_dict.pt"] = std::string(state_dict.data(), state_dict.size());
  files["training_args.json"] = JobSpecToJson(spec_);
  if (data_.tokenizer) files["tokenizer.model"] = data_.tokenizer->Serialized();
  return files;
}

std::string Trainer::RngStateBytes() const {
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

void Trainer::LoadRngState(const std::string& bytes) {
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

std::shared_ptr<Trainer::CheckpointSnapshot> Trainer::TakeSnapshot() {
  // Every rank runs this (it holds collectives); only rank 0's snapshot is written.
  const bool main = is_world_process_zero();
  auto snap = std::make_shared<CheckpointSnapshot>();
  torch::NoGradGuard no_grad;
  if (main) {
    for (auto& [name, t] : model_->NamedState()) snap->weights.emplace_back(name, t.detach().clone());
  }
  CheckpointFiles& files = snap->small_files;
  files["training_args.json"] = JobSpecToJson(spec_);
  if (data_.tokenizer) files["tokenizer.model"] = data_.tokenizer->Serialized();
  state_.stateful_callbacks.clear();
  for (const auto& cb : callbacks_.callbacks()) {
    if (!cb->stateful_name().empty()) state_.stateful_callbacks[cb->stateful_name()] = cb->SaveState();
  }
  files[kTrainerStateFile] = TrainerStateToJson(state_);
  if (args().save_only_model()) return snap;

  // The running loss sums become the ranks' means, so that rank 0's loop_state.json
  // holds the job's; later sums stay right because the mean is linear.
  loop_.loss_since_log = MeanAcrossRanks(loop_.loss_since_log);
  loop_.total_loss = MeanAcrossRanks(loop_.total_loss);
  if (world_size() > 1) {
    std::vector<std::string> rng_states = distributed_->AllGatherBytes(RngStateBytes());
    for (size_t r = 0; r < rng_states.size(); ++r) files[absl::StrCat("rng_state_", r, ".pth")] = rng_states[r];
  } else {
    files["rng_state.pth"] = RngStateBytes();
  }
  if (ShardsOptimizer()) {
    // Each rank's shard of the optimizer state, in its own file.
    std::vector<std::string> shards = distributed_->AllGatherBytes(SerializeOptimizer(*optimizer_));
    for (size_t r = 0; r < shards.size(); ++r) files[absl::StrCat("optimizer_", r, ".pt")] = shards[r];
  }
  if (!main) return snap;
  if (!ShardsOptimizer()) {
    snap->optimizer = SnapshotOptimizer(args(), model_->NamedParameters(), *optimizer_);
    if (!snap->optimizer) files["optimizer.pt"] = SerializeOptimizer(*optimizer_);  // unknown kind: now
  }
  const PlateauState& p = lr_schedule_->plateau_state();
  files["scheduler.json"] = json{{"lr", p.lr}, {"best", p.best}, {"num_bad_epochs", p.num_bad_epochs},
                                 {"cooldown_counter", p.cooldown_counter}, {"last_epoch", p.last_epoch}}
                                .dump(2);
  json loop = {{"world_size", world_size()},
               {"optimizer_sharding", ShardsOptimizer()},
               {"epoch", loop_.epoch},
               {"batches_done", loop_.batches_done},
               {"loss_since_log", loop_.loss_since_log},
               {"last_logged_step", loop_.last_logged_step},
               {"total_loss", loop_.total_loss},
               {"total_samples", loop_.total_samples}};
  if (loss_scaler_) {
    loop["loss_scale"] = loss_scaler_->scale();
    loop["loss_scale_growth_tracker"] = loss_scaler_->growth_tracker();
    loop["fp16_skipped_steps"] = loss_scaler_->skipped_steps();
  }
  files["loop_state.json"] = loop.dump(2);
  return snap;
}

CheckpointFiles Trainer::EncodeSnapshot(const CheckpointSnapshot& snap) {
  CheckpointFiles files = snap.small_files;
  files["model.safetensors"] = EncodeSafetensors(snap.weights, {{"format", "pt"}});
  if (snap.optimizer) files["optimizer.pt"] = SerializeOptimizer(*snap.optimizer);
  return files;
}

void Trainer::LoadModelWeights(const std::string& safetensors_bytes) {
  auto decoded = DecodeSafetensors(safetensors_bytes);
  if (!decoded.ok()) throw std::invalid_argument(std::string(decoded.status().message()));
  std::map<std::string, torch::Tensor> by_name(decoded->begin(), decoded->end());
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
  LoadModelWeights(Need(*files, dir, "model.safetensors"));
  auto saved = TrainerStateFromJson(Need(*files, dir, kTrainerStateFile));
  if (!saved.ok()) Corrupt(dir, std::string(saved.status().message()));
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
  if (!files->count("loop_state.json")) {
    spdlog::warn("{} was saved with save_only_model: optimizer, scheduler and RNG state start fresh", dir);
    loop_ = LoopState{};
    return;
  }
  json loop = json::parse(Need(*files, dir, "loop_state.json"));
  const int64_t saved_world = loop.value("world_size", int64_t{1});
  if (saved_world != world_size()) {
    // Each rank's data position and RNG state belong to the sharding they were saved
    // with; carrying them to another world size would silently change the data order.
    throw std::invalid_argument(absl::StrCat(
        "training_args.resume_from_checkpoint: ", dir, " was saved by ", saved_world, " rank(s) and this run has ",
        world_size(), "; resume it with ", saved_world, " rank(s) (resources.ranks), or start over from its weights"
        " with a new output_dir"));
  }
  if (loop.value("optimizer_sharding", false) != ShardsOptimizer()) {
    throw std::invalid_argument(absl::StrCat("training_args.optimizer_sharding: ", dir, " was saved ",
                                             ShardsOptimizer() ? "without" : "with",
                                             " it; resume with the same setting"));
  }
  const int rank = distributed_ == nullptr ? 0 : distributed_->rank();
  torch::serialize::InputArchive archive;
  std::istringstream optimizer_bytes(
      Need(*files, dir, ShardsOptimizer() ? absl::StrCat("optimizer_", rank, ".pt") : "optimizer.pt"));
  archive.load_from(optimizer_bytes, device_);
  optimizer_->load(archive);

  json scheduler = json::parse(Need(*files, dir, "scheduler.json"));
  lr_schedule_->set_plateau_state({scheduler.at("lr").get<double>(), scheduler.at("best").get<double>(),
                                   scheduler.at("num_bad_epochs").get<int64_t>(),
                                   scheduler.at("cooldown_counter").get<int64_t>(),
                                   scheduler.at("last_epoch").get<int64_t>()});
  LoadRngState(Need(*files, dir, world_size() > 1 ? absl::StrCat("rng_state_", rank, ".pth") : "rng_state.pth"));
  loop_.epoch = loop.at("epoch").get<int64_t>();
  loop_.batches_done = loop.at("batches_done").get<int64_t>();
  loop_.loss_since_log = loop.at("loss_since_log").get<double>();
  loop_.last_logged_step = loop.at("last_logged_step").get<int64_t>();
  loop_.total_loss = loop.at("total_loss").get<double>();
  loop_.total_samples = loop.at("total_samples").get<int64_t>();
  if (loss_scaler_ && loop.contains("loss_scale")) {
    loss_scaler_->Restore(loop.at("loss_scale").get<double>(), loop.at("loss_scale_growth_tracker").get<int64_t>(),
                          loop.at("fp16_skipped_steps").get<int64_t>());
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

  // The loop is blocked only for TakeSnapshot (in-memory copies); encoding, writing,
  // fsync and exports run on the store's writer thread.
  std::shared_ptr<CheckpointSnapshot> snap = TakeSnapshot();
  // Rank 0 writes every rank's part in one folder, which appears (renamed) only once
  // all parts are on disk: a checkpoint is complete for all ranks or not there at all.
  if (!is_world_process_zero()) return;
  if (!checkpoint_store_) {
    checkpoint_store_ = std::make_unique<CheckpointStore>(output_dir, args().save_total_limit());
  }
  auto produce = [snap]() -> absl::StatusOr<CheckpointFiles> {
    return RunGuarded<CheckpointFiles>("encoding a checkpoint", [&] { return EncodeSnapshot(*snap); });
  };
  const std::string strategy = args().hub_strategy();
  const bool export_to_hub = !args().hub_dir().empty() && strategy != "end";
  const Progress progress = CurrentProgress();
  CheckpointDone on_done = [this, progress, dir, strategy, export_to_hub](const absl::Status& s,
                                                                         const CheckpointFiles& files) {
      if (!s.ok()) return;
      // Tells whoever reads the JSON log (trainerd) that this checkpoint is on disk.
      double bytes = 0;
      for (const auto& [name, contents] : files) bytes += static_cast<double>(contents.size());
      training_log_->Record("checkpoint", progress, {{"size_bytes", bytes}}, {{"path", dir}});
      if (!export_to_hub) return;
      const int64_t step = progress.step;
      // Between saves the registry gets the weights as model.safetensors; model.pt and
      // model_state_dict.pt join them in the export at the end (save_model).
      CheckpointFiles model_files = {{"model.safetensors", files.at("model.safetensors")},
                                     {"training_args.json", files.at("training_args.json")}};
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
