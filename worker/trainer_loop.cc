// Trainer::train(): the training loop, top to bottom.
#include <chrono>
#include <cmath>

#include <ATen/autocast_mode.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "worker/optimizer_factory.h"
#include "worker/torch_status.h"
#include "worker/trainer.h"

namespace trainerd {
namespace {

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The L2 norm of all gradients together (before clipping).
double GradientNorm(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> norms;
  for (const auto& p : params) {
    if (p.grad().defined()) norms.push_back(p.grad().norm());
  }
  return norms.empty() ? 0.0 : torch::stack(norms).norm().item<double>();
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
  return RunGuarded<TrainOutput>("train", [&] { return TrainLoop(); });
}

absl::StatusOr<TrainOutput> Trainer::TrainLoop() {
  const auto& a = args();
  if (a.bf16()) CheckBf16Autocast();
  std::unique_ptr<DataLoader> loader = get_train_dataloader();
  const int64_t batches_per_epoch = loader->num_batches();
  if (batches_per_epoch == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data.train: ", loader->num_examples(), " examples make no full batch of ",
        a.per_device_train_batch_size(), " (dataloader_drop_last is on)"));
  }
  const int64_t accumulation = a.gradient_accumulation_steps();
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
  create_optimizer_and_scheduler(state_.max_steps);
  std::vector<torch::Tensor> params;
  for (const torch::Tensor& p : model_->Parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  if (params.empty()) {
    return absl::InvalidArgumentError("model: has no trainable parameters (none requires grad)");
  }

  spdlog::info("***** Running training *****");
  spdlog::info("  Num examples = {}, num epochs = {}, batch size = {}, accumulation steps = {}",
               loader->num_examples(), state_.num_train_epochs, a.per_device_train_batch_size(),
               accumulation);
  spdlog::info("  Total optimization steps = {}, trainable parameters = {}, threads = {}",
               state_.max_steps, model_->NumParameters(), torch::get_num_threads());

  if (a.eval_on_start()) EvaluateDuringTraining();
  model_->SetTraining(true);
  const auto train_start = Clock::now();
  double total_loss = 0, loss_since_log = 0, data_wait_seconds = 0;
  int64_t last_logged_step = 0, samples_since_log = 0, total_samples = 0;
  auto last_log_time = Clock::now();
  bool stop = false;
  // Logs the mean loss since the last log, as HF's _maybe_log_save_evaluate does.
  auto log_training = [&](double grad_norm) {
    Metrics logs = {{"loss", loss_since_log / (state_.global_step - last_logged_step)},
                    {"learning_rate", lr_schedule_->LearningRate(state_.global_step)},
                    {"samples_per_second", samples_since_log / SecondsSince(last_log_time)}};
    if (!std::isnan(grad_norm)) logs["grad_norm"] = grad_norm;
    log(logs);
    loss_since_log = 0;
    samples_since_log = 0;
    last_logged_step = state_.global_step;
    last_log_time = Clock::now();
  };

  for (int64_t epoch = 0; epoch < state_.num_train_epochs && !stop; ++epoch) {
    loader->StartEpoch(epoch);
    int64_t batches_done = 0;
    while (!stop) {
      // One optimizer update = gradient_accumulation_steps micro-batches.
      std::vector<Batch> group;
      const auto wait_start = Clock::now();
      while (static_cast<int64_t>(group.size()) < accumulation) {
        std::optional<Batch> batch = loader->Next();
        if (!batch) break;
        group.push_back(std::move(*batch));
      }
      data_wait_seconds += SecondsSince(wait_start);
      if (group.empty()) break;

      const double num_items = CountItems(group);
      double step_loss = 0;
      for (const Batch& batch : group) {
        step_loss += training_step(*model_, batch, num_items).item<double>();
        samples_since_log += batch.size();
        total_samples += batch.size();
      }
      // HF's DefaultFlowCallback.on_step_end decides, for the step about to complete.
      const int64_t step = state_.global_step + 1;
      const bool should_log =
          (step == 1 && a.logging_first_step()) ||
          (a.logging_strategy() == "steps" && step % state_.logging_steps == 0);
      const bool should_evaluate = a.eval_strategy() == "steps" && step % state_.eval_steps == 0;
      // Clipping needs the norm every step; without clipping it is computed only to log.
      double grad_norm = std::nan("");
      if (a.max_grad_norm() > 0) {
        grad_norm = torch::nn::utils::clip_grad_norm_(params, a.max_grad_norm());
      } else if (should_log) {
        grad_norm = GradientNorm(params);
      }
      SetLearningRate(*optimizer_, lr_schedule_->LearningRate(state_.global_step));
      optimizer_->step();
      optimizer_->zero_grad();

      state_.global_step = step;
      batches_done += static_cast<int64_t>(group.size());
      state_.epoch = epoch + static_cast<double>(batches_done) / batches_per_epoch;
      total_loss += step_loss;
      loss_since_log += step_loss;
      if (should_log) log_training(grad_norm);
      if (should_evaluate) EvaluateDuringTraining();
      stop = state_.global_step >= state_.max_steps;
    }
    // HF's DefaultFlowCallback.on_epoch_end.
    if (a.logging_strategy() == "epoch" && state_.global_step > last_logged_step) {
      log_training(std::nan(""));
    }
    if (a.eval_strategy() == "epoch") EvaluateDuringTraining();
  }

  const double runtime = SecondsSince(train_start);
  TrainOutput out;
  out.global_step = state_.global_step;
  out.training_loss = state_.global_step > 0 ? total_loss / state_.global_step : 0;
  out.metrics = {{"train_runtime", runtime},
                 {"train_samples_per_second", total_samples / runtime},
                 {"train_steps_per_second", state_.global_step / runtime},
                 {"train_loss", out.training_loss},
                 {"train_data_wait_fraction", data_wait_seconds / runtime}};
  log(out.metrics, "train_end");
  return out;
}

void Trainer::EvaluateDuringTraining() {
  absl::StatusOr<Metrics> metrics = evaluate();
  if (!metrics.ok()) throw std::runtime_error(std::string(metrics.status().message()));
  model_->SetTraining(true);
}

}  // namespace trainerd
