// Trainer::train(): the training loop, top to bottom, in HF's order of events.
#include <chrono>
#include <cmath>

#include <ATen/autocast_mode.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "protocol/training_record.h"
#include "worker/models/compiled_model.h"
#include "worker/distributed/distributed.h"
#include "worker/parallel/parallel_strategy.h"
#include "worker/optim/optimizer_factory.h"
#include "worker/trainer/torch_status.h"
#include "worker/trainer/cpu_memory_tracker.h"
#include "worker/trainer/trainer.h"

namespace trainerd {
namespace {

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Fails early, with the field name, where this LibTorch cannot autocast to bf16 on CPU.
void CheckBf16Autocast() {
  const bool previous = at::autocast::is_cpu_enabled();
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  torch::Tensor probe = torch::mm(torch::ones({2, 2}), torch::ones({2, 2}));
  at::autocast::set_cpu_enabled(previous);
  at::autocast::clear_cache();
  if (probe.scalar_type() != torch::kBFloat16) {
    throw std::invalid_argument("training_args.bf16: this LibTorch build cannot autocast to bfloat16 on CPU");
  }
}

}  // namespace

int64_t Trainer::StepsFromArg(double value) const {
  // HF: a value < 1 is a ratio of the total number of training steps.
  if (value < 1) return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(state_.max_steps * value)));
  return static_cast<int64_t>(value);
}

absl::StatusOr<TrainOutput> Trainer::train() {
  absl::StatusOr<TrainOutput> out = RunGuarded<TrainOutput>("train", [&] { return TrainLoop(); });
  // Whatever happened, the last checkpoint must be on disk (or its error reported).
  if (checkpoint_store_) {
    absl::Status flushed = checkpoint_store_->Flush();
    if (out.ok() && !flushed.ok()) return flushed;
  }
  return out;
}

// What one call of train() keeps between its steps.
struct Trainer::TrainRun {
  std::unique_ptr<DataLoader> loader;
  int64_t batches_per_epoch = 0;
  int64_t accumulation = 1;
  std::vector<torch::Tensor> params;  // the trainable ones
  bool steps_in_backward = false;     // the optimizer updates weights during backward
  Clock::time_point start;
  int64_t resumed_samples = 0, resumed_step = 0;
  double data_wait_seconds = 0;
  int64_t samples_since_log = 0;
  Clock::time_point last_log_time;
};

absl::StatusOr<TrainOutput> Trainer::TrainLoop() {
  // NEFTune is on for training only; like HF, it is taken off when train() ends, so that
  // evaluation, prediction and the saved model see no noise.
  // (Through the member: torch_compile may replace the model in between.)
  struct NeftuneOff {
    std::unique_ptr<Model>* model;
    ~NeftuneOff() { (*model)->SetNeftuneNoiseAlpha(0); }
  } neftune_off{&model_};
  TrainRun run;
  if (absl::Status s = PrepareTraining(run); !s.ok()) return s;
  LogTrainingPlan(run);
  // The peak from here is training's: what loading the model took is not counted.
  if (CpuMemoryTracker* memory = CpuMemoryTracker::Installed()) memory->ResetPeak();
  const auto& a = args();
  callbacks_.on_train_begin(a, state_, control_);
  // Where this run begins in trainer_log.jsonl: a resumed run's records after it replace
  // the ones an earlier run logged past its checkpoint.
  std::map<std::string, std::string> begin;
  if (!resumed_from_.empty()) begin[kResumedFromField] = resumed_from_;
  const Metrics sizes = {{"trainable_params", static_cast<double>(model_->NumParameters())},
                         {"all_params", static_cast<double>(model_->NumAllParameters())},
                         {"trainable_percent", TrainablePercent()}};
  training_log_->Record(kRecordTrainBegin, CurrentProgress(), sizes, begin);
  if (a.eval_on_start() && resumed_from_.empty()) EvaluateDuringTraining();
  model_->SetTraining(true);
  run.start = run.last_log_time = Clock::now();
  run.resumed_samples = loop_.total_samples;
  run.resumed_step = state_.global_step;
  for (int64_t epoch = loop_.epoch; epoch < state_.num_train_epochs; ++epoch) {
    TrainEpoch(run, epoch);
    if (control_.should_training_stop) break;
  }
  return FinishTraining(run);
}

absl::Status Trainer::PrepareTraining(TrainRun& run) {
  const auto& a = args();
  if (a.bf16()) CheckBf16Autocast();
  run.loader = get_train_dataloader();
  const int64_t batches_per_epoch = run.batches_per_epoch = run.loader->num_batches();
  if (batches_per_epoch == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data.train: ", run.loader->num_examples(), " examples make no full batch of ",
        a.per_device_train_batch_size(), " (dataloader_drop_last is on)"));
  }
  const int64_t accumulation = run.accumulation = a.gradient_accumulation_steps();
  // Every micro-batch is used: a short last group still makes an update.
  const int64_t updates_per_epoch = (batches_per_epoch + accumulation - 1) / accumulation;
  if (a.max_steps() > 0) {
    state_.max_steps = a.max_steps();
    state_.num_train_epochs = (a.max_steps() + updates_per_epoch - 1) / updates_per_epoch;
  } else {
    state_.max_steps = static_cast<int64_t>(std::ceil(a.num_train_epochs() * updates_per_epoch));
    state_.num_train_epochs = static_cast<int64_t>(std::ceil(a.num_train_epochs()));
  }
  state_.logging_steps = StepsFromArg(a.logging_steps());
  state_.eval_steps = StepsFromArg(a.eval_steps());
  state_.save_steps = a.save_strategy() == "steps" ? StepsFromArg(a.save_steps()) : 0;
  create_optimizer_and_scheduler(state_.max_steps);
  run.params = strategy().GradientTensors();
  if (run.params.empty()) {
    return absl::InvalidArgumentError("model: has no trainable parameters (none requires grad)");
  }

  if (absl::Status s = ApplySpeedOptions(); !s.ok()) return s;

  run.steps_in_backward = optimizer_capabilities_->StepsDuringBackward();
  if (run.steps_in_backward && world_size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "training_args.optim: ", a.optim(), " steps each weight during backward, before gradients could be "
        "averaged across ranks; this run has ", world_size(), " ranks"));
  }

  strategy().PrepareBackward();

  resumed_from_ = ResolveResumeCheckpoint();
  if (!resumed_from_.empty()) {
    LoadCheckpoint(resumed_from_);
    spdlog::info("Resuming from {} at step {} (epoch {}, batch {}): earlier batches are skipped, not replayed",
                 resumed_from_, state_.global_step, loop_.epoch, loop_.batches_done);
  }
  return absl::OkStatus();
}

absl::Status Trainer::ApplySpeedOptions() {
  const auto& a = args();
  if (a.fp16()) {
    if (!device_.is_cuda()) {
      return absl::InvalidArgumentError(
          "training_args.fp16: needs a CUDA GPU (fp16 autocast is CUDA-only in LibTorch); on the CPU use bf16");
    }
    if (!loss_scaler_) loss_scaler_ = std::make_unique<LossScaler>();
  }
  if (a.torch_compile() && !compiled_) {
    if (absl::Status s = CompileModel(&model_, device_); !s.ok()) return s;
    compiled_ = true;
  }
  if (a.use_liger_kernel()) {
    const auto& c = a.liger_kernel_config();
    const LigerKernels kernels{c.rope(), c.swiglu(), c.rms_norm(), c.cross_entropy(), c.fused_linear_cross_entropy()};
    if (!model_->SetLigerKernels(kernels)) {
      return absl::InvalidArgumentError("training_args.use_liger_kernel: this model has no fused kernels (the built-in gpt and "
                                     "text_classifier have, and hf models of the Llama family)");
    }
  }
  // fsdp_config.activation_checkpointing is HF's other name for it.
  const bool checkpointing = a.gradient_checkpointing() || a.fsdp_config().activation_checkpointing();
  if (checkpointing && !model_->SetGradientCheckpointing(true)) {
    return absl::InvalidArgumentError("training_args.gradient_checkpointing: this model does not support it");
  }
  if (a.neftune_noise_alpha() > 0 && !model_->SetNeftuneNoiseAlpha(a.neftune_noise_alpha())) {
    return absl::InvalidArgumentError("training_args.neftune_noise_alpha: this model has no token embeddings");
  }
  return absl::OkStatus();
}

double Trainer::TrainablePercent() const {
  const int64_t all = model_->NumAllParameters();
  return all == 0 ? 0.0 : 100.0 * static_cast<double>(model_->NumParameters()) / static_cast<double>(all);
}

void Trainer::LogTrainingPlan(const TrainRun& run) {
  const auto& a = args();
  spdlog::info("***** Running training *****");
  spdlog::info("  Num examples = {}, num epochs = {}, batch size = {}, accumulation steps = {}",
               run.loader->num_examples(), state_.num_train_epochs, a.per_device_train_batch_size(),
               run.accumulation);
  spdlog::info("  Total optimization steps = {}, threads = {}", state_.max_steps, torch::get_num_threads());
  // As peft's print_trainable_parameters.
  spdlog::info("  trainable params: {} || all params: {} || trainable%: {:.4f}", model_->NumParameters(),
               model_->NumAllParameters(), TrainablePercent());
  const std::string parallel = strategy().Describe(a.per_device_train_batch_size() * run.accumulation * world_size());
  if (!parallel.empty()) spdlog::info("  {}", parallel);
}

void Trainer::TrainEpoch(TrainRun& run, int64_t epoch) {
  const auto& a = args();
  // loop_.epoch == epoch here; batches_done > 0 only when resuming mid-epoch.
  run.loader->StartEpoch(epoch, loop_.batches_done);
  callbacks_.on_epoch_begin(a, state_, control_);
  while (true) {
    // One optimizer update = gradient_accumulation_steps micro-batches.
    std::vector<Batch> group;
    const auto wait_start = Clock::now();
    while (static_cast<int64_t>(group.size()) < run.accumulation) {
      std::optional<Batch> batch = run.loader->Next();
      if (!batch) break;
      group.push_back(std::move(*batch));
    }
    run.data_wait_seconds += SecondsSince(wait_start);
    if (group.empty()) break;
    const double grad_norm = TrainStep(run, group);
    loop_.batches_done += static_cast<int64_t>(group.size());
    state_.epoch = epoch + static_cast<double>(loop_.batches_done) / run.batches_per_epoch;
    callbacks_.on_step_end(a, state_, control_);
    SyncControlAcrossRanks();
    LogSaveEvaluate(run, grad_norm);
    if (control_.should_epoch_stop || control_.should_training_stop) break;
  }
  // The epoch is over: a checkpoint saved from here continues with the next one.
  loop_.epoch = epoch + 1;
  loop_.batches_done = 0;
  callbacks_.on_epoch_end(a, state_, control_);
  if (control_.interrupted) return;  // saved at the step it stopped; resumed from there
  LogSaveEvaluate(run, std::nan(""));
}

void Trainer::LogSaveEvaluate(TrainRun& run, double grad_norm) {
  if (!control_.should_log) return MaybeLogSaveEvaluate(grad_norm, 0);
  const double seconds = SecondsSince(run.last_log_time);
  MaybeLogSaveEvaluate(grad_norm, run.samples_since_log * world_size() / seconds);
  run.samples_since_log = 0;
  run.last_log_time = Clock::now();
}

double Trainer::TrainStep(TrainRun& run, std::vector<Batch>& group) {
  const auto& a = args();
  callbacks_.on_step_begin(a, state_, control_);
  // Set before backward: a layer-wise optimizer steps during it.
  SetLearningRate(*optimizer_, lr_schedule_->LearningRate(state_.global_step));
  const double num_items = ItemsPerRank(group);
  double step_loss = 0;
  for (size_t i = 0; i < group.size(); ++i) {
    strategy_->BeginMicroBatch(i + 1 == group.size());
    step_loss += training_step(*model_, group[i], num_items).item<double>();
    run.samples_since_log += group[i].size();
    loop_.total_samples += group[i].size();
    if (i + 1 < group.size()) callbacks_.on_substep_end(a, state_, control_);
  }
  strategy_->FinishGradients();
  // fp16: gradients back to their true size; an overflow skips this update (the
  // gradients are averaged already, so every rank decides the same).
  const bool skip_update = loss_scaler_ && !loss_scaler_->Unscale(run.params);
  // HF reports grad_norm only when it clips (max_grad_norm > 0). An optimizer that
  // steps during backward has spent (and freed) the gradients already.
  const double grad_norm = a.max_grad_norm() > 0 && !skip_update && !run.steps_in_backward
                               ? strategy_->ClipGradNorm(a.max_grad_norm())
                               : std::nan("");
  callbacks_.on_pre_optimizer_step(a, state_, control_);
  if (skip_update) {
    spdlog::warn("step {}: fp16 gradients overflowed at loss scale {}; update skipped", state_.global_step + 1,
                 loss_scaler_->scale());
  } else {
    optimizer_->step();
  }
  if (loss_scaler_) loss_scaler_->Update(skip_update);
  strategy_->FinishOptimizerStep();
  if (optimizer_memory_.empty()) optimizer_memory_ = MeasureOptimizerMemory();
  callbacks_.on_optimizer_step(a, state_, control_);
  optimizer_->zero_grad();
  state_.global_step += 1;
  loop_.total_loss += step_loss;
  loop_.loss_since_log += step_loss;
  return grad_norm;
}

absl::StatusOr<TrainOutput> Trainer::FinishTraining(const TrainRun& run) {
  const auto& a = args();
  if (checkpoint_store_) {
    if (absl::Status s = checkpoint_store_->Flush(); !s.ok()) return s;
  }
  // Rank 0 writes the checkpoints: the others wait until they are on disk.
  if (world_size() > 1) distributed_->Barrier();
  if (a.load_best_model_at_end() && state_.best_model_checkpoint && !control_.interrupted) {
    spdlog::info("Loading best model from {} (step {}, {} = {})", *state_.best_model_checkpoint,
                 state_.best_global_step.value_or(-1), a.metric_for_best_model(), state_.best_metric.value_or(0));
    auto files = CheckpointStore::Read(*state_.best_model_checkpoint);
    if (!files.ok()) return files.status();
    last_evaluation_.reset();  // other weights from here on
    BuildCheckpointer();
    weights_part_->LoadState(CheckpointContents(*state_.best_model_checkpoint, *std::move(files)));
  }

  const double runtime = SecondsSince(run.start);
  // Every rank reads as many samples (shards are padded): the job's throughput is W times.
  const int64_t samples = (loop_.total_samples - run.resumed_samples) * world_size();
  TrainOutput out;
  out.global_step = state_.global_step;
  out.training_loss = state_.global_step > 0 ? MeanAcrossRanks(loop_.total_loss) / state_.global_step : 0;
  out.metrics = {{"train_runtime", runtime},
                 {"train_samples_per_second", samples / runtime},
                 {"train_steps_per_second", (state_.global_step - run.resumed_step) / runtime},
                 {"train_loss", out.training_loss},
                 {"train_data_wait_fraction", run.data_wait_seconds / runtime}};
  for (const auto& [name, value] : strategy_->RunMetrics(runtime, state_.global_step - run.resumed_step)) {
    out.metrics[name] = value;
  }
  out.metrics.insert(optimizer_memory_.begin(), optimizer_memory_.end());
  // What this rank's tensors on the CPU (weights, gradients, optimizer state,
  // activations) held at most while it trained, measured at the allocator.
  if (const CpuMemoryTracker* memory = CpuMemoryTracker::Installed()) {
    out.metrics["train_peak_memory_mb"] = static_cast<double>(memory->peak()) / (1024.0 * 1024.0);
  }
  if (loss_scaler_) {
    out.metrics["train_fp16_skipped_steps"] = static_cast<double>(loss_scaler_->skipped_steps());
    out.metrics["train_fp16_loss_scale"] = loss_scaler_->scale();
  }
  // An interrupted run has not ended: its resumption writes the train_end record.
  if (!control_.interrupted) log(out.metrics, "train_end");
  callbacks_.on_train_end(a, state_, control_);
  return out;
}

void Trainer::SyncControlAcrossRanks() {
  if (world_size() == 1) return;
  // A stop request (SIGTERM, trainerd's "stop") reaches ranks at different steps; every
  // rank must stop and save at the same one, or the others would wait in a collective.
  torch::Tensor flags = torch::tensor({control_.should_training_stop ? 1.0 : 0.0, control_.should_save ? 1.0 : 0.0,
                                       control_.should_epoch_stop ? 1.0 : 0.0, control_.interrupted ? 1.0 : 0.0},
                                      torch::kDouble);
  distributed_->AllReduceSum(flags);
  control_.should_training_stop = flags[0].item<double>() > 0;
  control_.should_save = flags[1].item<double>() > 0;
  control_.should_epoch_stop = flags[2].item<double>() > 0;
  control_.interrupted = flags[3].item<double>() > 0;
}

void Trainer::MaybeLogSaveEvaluate(double grad_norm, double samples_per_second) {
  if (control_.should_log && state_.global_step > loop_.last_logged_step) {
    // HF logs the loss averaged over the ranks.
    const double loss = MeanAcrossRanks(loop_.loss_since_log);
    Metrics logs = {{"loss", loss / (state_.global_step - loop_.last_logged_step)},
                    {"learning_rate", lr_schedule_->LearningRate(state_.global_step)},
                    {"samples_per_second", samples_per_second}};
    if (!std::isnan(grad_norm)) logs["grad_norm"] = grad_norm;
    loop_.loss_since_log = 0;
    loop_.last_logged_step = state_.global_step;
    log(logs);
  }
  if (control_.should_evaluate) {
    const bool new_best = EvaluateDuringTraining();
    if (args().save_strategy() == "best") control_.should_save = new_best;
  }
  if (control_.should_save) {
    SaveCheckpoint();
    callbacks_.on_save(args(), state_, control_);
  }
}

bool Trainer::EvaluateDuringTraining() {
  absl::StatusOr<Metrics> metrics = evaluate();
  if (!metrics.ok()) throw StatusError(metrics.status());  // keeps its code to the worker's edge
  model_->SetTraining(true);
  auto it = metrics->find(BestMetricKey(args()));
  if (lr_schedule_ && it != metrics->end()) lr_schedule_->OnEvaluate(it->second);
  if (!args().has_metric_for_best_model() || it == metrics->end()) return false;
  const double value = it->second;
  const bool better = !state_.best_metric ||
                      (args().greater_is_better() ? value > *state_.best_metric : value < *state_.best_metric);
  if (better) {
    state_.best_metric = value;
    state_.best_global_step = state_.global_step;
  }
  return better;
}

}  // namespace trainerd
