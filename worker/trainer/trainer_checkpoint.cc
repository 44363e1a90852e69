// Trainer: saving, resuming and exporting checkpoints. Every stateful part of a run is
// registered once with the Checkpointer (BuildCheckpointer), its save beside its load.
//
// A checkpoint folder holds (HF's names where HF has one):
//   model.safetensors   parameters and buffers (a LoRA job: adapter_model.safetensors
//                       and adapter_config.json, never the frozen base)
//   optimizer.pt        optimizer state (LibTorch archive)        [not with save_only_model]
//                       (optimizer_<rank>.pt, each rank's shard, with optimizer_sharding;
//                       with fsdp, each rank's slices in fsdp_shards/ beside
//                       fsdp_index.json, and with SHARDED_STATE_DICT the weights' slices
//                       there instead of model.safetensors: the ParallelStrategy's parts,
//                       see worker/parallel/sharded_checkpoint.h)
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
#include <torch/torch.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "spec/spec_loader.h"
#include "worker/checkpoint/checkpointer.h"
#include "worker/checkpoint/group_checkpoint_writers.h"
#include "worker/checkpoint/model_weights_part.h"
#include "worker/checkpoint/rng_state_part.h"
#include "worker/parallel/parallel_strategy.h"
#include "spec/shard_size.h"
#include "worker/models/hf/hf_weights.h"
#include "worker/models/hf/weight_files_writer.h"
#include "worker/models/safetensors.h"
#include "worker/data/text_tokenizer.h"
#include "worker/trainer/torch_status.h"
#include "worker/trainer/trainer.h"
#include "worker/trainer/trainer_state_part.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;

}  // namespace

std::string Trainer::ResolveResumeCheckpoint() const {
  const std::string& r = args().resume_from_checkpoint();
  if (r.empty() || r == "false") return "";
  if (r != "true") {
    if (absl::Status s = CheckpointStore::Verify(r); !s.ok()) {
      throw StatusError(absl::Status(s.code(), absl::StrCat("training_args.resume_from_checkpoint: ", s.message())));
    }
    return r;
  }
  auto latest = CheckpointStore::LatestValid(args().output_dir(), [](const std::string& warning) {
    spdlog::warn("{}; falling back to an older checkpoint", warning);
  });
  if (!latest.ok()) {
    throw StatusError(absl::Status(latest.status().code(),
                                   absl::StrCat("training_args.resume_from_checkpoint: ", latest.status().message())));
  }
  return *latest;
}

absl::Status Trainer::SaveWeightFiles(const std::string& output_dir, std::vector<std::string>* written) {
  // The layout is known on every rank, gathered or not: a released parameter keeps its
  // shape and dtype.
  const NamedTensors layout = model_->HfState();
  CheckWeightsToSave(*model_, layout);
  std::unique_ptr<WeightFilesWriter> writer;
  absl::Status status;
  if (is_world_process_zero()) {
    auto created = WeightFilesWriter::Create(output_dir, layout, MaxShardBytes(), model_->WeightsFilePrefix());
    if (created.ok()) {
      writer = *std::move(created);
    } else {
      status = created.status();
    }
  }
  // Every rank gathers each unit in turn (the gathers are collectives), even after rank
  // 0 failed to write: the error is reported once all have passed.
  strategy().ForEachWholeUnit(*model_, [&](const NamedTensors& unit) {
    if (writer == nullptr || !status.ok()) return;
    for (const auto& [name, tensor] : unit) {
      if (!writer->Wants(name)) continue;
      status = writer->Write(name, tensor);
      if (!status.ok()) return;
    }
  });
  if (writer != nullptr && status.ok()) status = writer->Finish();
  if (writer != nullptr && status.ok()) *written = writer->FileNames();
  return status;
}

CheckpointFiles Trainer::WholeModelFiles(bool merged_only) {
  CheckpointFiles files;
  if (!merged_only && model_->HasTorchScript()) {
    std::ostringstream script;
    model_->SaveTorchScript(script);
    files["model.pt"] = script.str();
  }
  if (!merged_only && model_->WeightsFilePrefix() == "model") {  // an adapter's state dict would pass for the model's
    std::vector<char> state_dict = SerializeStateDict(*model_);
    files["model_state_dict.pt"] = std::string(state_dict.data(), state_dict.size());
  }
  files.merge(model_->MergedFolderFiles(MaxShardBytes()));
  return files;
}

CheckpointFiles Trainer::RunFiles() const {
  CheckpointFiles files = {{"training_args.json", JobSpecToJson(spec_)}};
  if (data_.tokenizer) files.merge(data_.tokenizer->Files());  // tokenizer.model or tokenizer.json
  // With the weights under transformers' names, config.json (and the generation and
  // tokenizer configs) make a folder that from_pretrained loads.
  files.merge(model_->HfFolderFiles());
  return files;
}

std::unique_ptr<Stateful> Trainer::MakeWeightsPart() {
  // Each rank's slices where the strategy saves them so; else copied (gathered where the
  // strategy shards them) and written by rank 0. Encoded on the writer thread.
  if (std::unique_ptr<Stateful> sharded = strategy().MakeShardedWeightsPart()) return sharded;
  return std::make_unique<ModelWeightsPart>(model_.get(), MaxShardBytes(), is_world_process_zero(),
                                            [this](const std::function<void()>& fn, bool write_back) {
                                              strategy().WithFullWeights(fn, write_back);
                                            });
}

absl::Status Trainer::consolidate_checkpoint(const std::string& checkpoint, const std::string& output_dir) {
  absl::Status loaded = RunGuardedStatus("reading the checkpoint", [&] {
    auto files = CheckpointStore::Read(checkpoint);
    if (!files.ok()) return files.status();
    MakeWeightsPart()->LoadState(CheckpointContents(checkpoint, *std::move(files)));
    return absl::OkStatus();
  });
  if (!loaded.ok()) return loaded;
  return save_model(output_dir);
}

void Trainer::BuildCheckpointer() {
  if (checkpointer_) return;
  checkpointer_ = std::make_unique<Checkpointer>();
  using Scope = Checkpointer::Scope;
  std::unique_ptr<Stateful> weights = MakeWeightsPart();
  weights_part_ = weights.get();
  checkpointer_->Add(std::move(weights), Scope::kModel);
  // What the run was (read by people and by HF tools, never loaded back).
  checkpointer_->Add(std::make_unique<StatefulFunctions>(
                         [this](CheckpointContents& out) {
                           for (auto& [name, bytes] : RunFiles()) out.Put(name, std::move(bytes));
                         },
                         [](const CheckpointContents&) {}),
                     Scope::kModel);
  // HF's TrainerState, with the stateful callbacks' states inside.
  checkpointer_->Add(std::make_unique<TrainerStatePart>(&state_, &callbacks_), Scope::kModel);
  // The loop's position and running sums (first of the training parts: it checks that
  // the checkpoint fits this run before the others load).
  checkpointer_->Add(std::make_unique<LoopStatePart>(&loop_, distributed_, strategy().name(),
                                                    strategy().WritesOwnShard(), args().per_device_train_batch_size()),
                     Scope::kTraining);
  if (loss_scaler_) checkpointer_->Add(loss_scaler_.get(), Scope::kTraining);
  checkpointer_->Add(std::make_unique<RngStatePart>(distributed_), Scope::kTraining);
  checkpointer_->Add(strategy().MakeOptimizerStatePart(args(), optimizer_.get(), device_), Scope::kTraining);
  checkpointer_->Add(lr_schedule_.get(), Scope::kTraining);
}

int64_t Trainer::MaxShardBytes() const {
  if (max_shard_bytes_) return *max_shard_bytes_;
  if (model_->HfFolderFiles().empty()) return *(max_shard_bytes_ = std::numeric_limits<int64_t>::max());
  const std::string& size = spec_.model().max_shard_size();
  absl::StatusOr<int64_t> bytes = ParseShardSize(size.empty() ? kDefaultMaxShardSize : size);
  if (!bytes.ok()) throw StatusError(bytes.status());
  return *(max_shard_bytes_ = *bytes);
}

void Trainer::LoadCheckpoint(const std::string& dir) {
  // A checkpoint that cannot be read keeps its error's code (an I/O failure is retried,
  // not taken for a bad spec).
  auto files = CheckpointStore::Read(dir);
  if (!files.ok()) throw StatusError(files.status());
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
  // collectives). Either rank 0 writes every rank's part, or (a strategy that writes
  // its own shard) each rank writes its files and rank 0 the others; either way the
  // folder appears (renamed) only once all parts are on disk: a checkpoint is complete
  // for all ranks or not there at all.
  BuildCheckpointer();
  auto contents = std::make_shared<CheckpointContents>(checkpointer_->Save(args().save_only_model()));
  const bool together = strategy().WritesOwnShard() && world_size() > 1;
  if (!together && !is_world_process_zero()) return;
  if (together && !checkpoint_writers_) {
    auto writers = GroupCheckpointWriters::Create(*distributed_);
    if (!writers.ok()) throw StatusError(writers.status());
    checkpoint_writers_ = *std::move(writers);
  }
  if (!checkpoint_store_) {
    checkpoint_store_ =
        std::make_unique<CheckpointStore>(output_dir, args().save_total_limit(), checkpoint_writers_.get());
  }
  const bool all_files = is_world_process_zero();
  auto produce = [contents, all_files]() -> absl::StatusOr<CheckpointFiles> {
    return RunGuarded<CheckpointFiles>("encoding a checkpoint", [&] { return contents->Encode(all_files); });
  };
  if (!is_world_process_zero()) {
    auto saved = checkpoint_store_->Save(state_.global_step, produce, keep);
    if (!saved.ok()) throw StatusError(saved.status());
    return;
  }
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
          "training_args.json",    "tokenizer.model",         "tokenizer.json",      "config.json",
          "generation_config.json", "tokenizer_config.json", "special_tokens_map.json", "adapter_config.json",
          "vocab.txt"};
      CheckpointFiles model_files;
      bool has_weights = false;
      for (const auto& [name, bytes] : files) {
        const bool weights = absl::StartsWith(name, prefix) &&
                             (absl::EndsWith(name, ".safetensors") || absl::EndsWith(name, ".index.json"));
        has_weights = has_weights || weights;
        if (weights || kRunFiles.count(name)) model_files[name] = bytes;
      }
      // A sharded checkpoint holds slices, not a model: the model is exported at the end.
      if (has_weights) ExportToHub("model", model_files);
      if (strategy != "checkpoint" && strategy != "all_checkpoints") return;
      // Every rank's files, where each rank wrote its own.
      absl::StatusOr<CheckpointFiles> whole = CheckpointStore::Read(dir, /*with_folders=*/true);
      if (!whole.ok()) {
        spdlog::error("export of {} failed: {}", dir, std::string(whole.status().message()));
        return;
      }
      ExportToHub(strategy == "checkpoint" ? "last-checkpoint" : absl::StrCat(kCheckpointPrefix, step), *whole);
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
