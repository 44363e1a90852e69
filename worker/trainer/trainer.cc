#include "worker/trainer/trainer.h"

#include <sched.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <ATen/autocast_mode.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "protocol/worker_environment.h"
#include "worker/distributed/distributed.h"
#include "worker/checkpoint/optimizer_snapshot.h"
#include "worker/parallel/parallel_strategy.h"
#include "worker/trainer/cpu_memory_tracker.h"
#include "worker/trainer/metrics.h"
#include "worker/optim/optimizer_factory.h"
#include "worker/trainer/torch_status.h"

namespace trainerd {
namespace {

namespace F = torch::nn::functional;

int64_t AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return 1;
}

// Turns autocast on for its scope: bf16 on the CPU (training_args.bf16), fp16 on CUDA
// (training_args.fp16).
class AutocastScope {
 public:
  AutocastScope(bool bf16_cpu, bool fp16_cuda) : bf16_(bf16_cpu), fp16_(fp16_cuda) {
    if (bf16_) {
      previous_ = at::autocast::is_cpu_enabled();
      at::autocast::set_cpu_enabled(true);
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    }
    if (fp16_) {
      previous_ = at::autocast::is_enabled();
      at::autocast::set_enabled(true);
      at::autocast::set_autocast_gpu_dtype(at::kHalf);
    }
  }
  ~AutocastScope() {
    if (bf16_) at::autocast::set_cpu_enabled(previous_);
    if (fp16_) at::autocast::set_enabled(previous_);
    if ((bf16_ || fp16_) && !previous_) at::autocast::clear_cache();
  }

 private:
  bool bf16_, fp16_;
  bool previous_ = false;
};

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

Trainer::Trainer(trainer::v1::JobSpec spec, std::unique_ptr<Model> model, DatasetBundle data,
                 std::vector<std::shared_ptr<TrainerCallback>> callbacks)
    : spec_(std::move(spec)), model_(std::move(model)), data_(std::move(data)) {
  const int64_t threads = args().torch_num_threads() > 0 ? args().torch_num_threads() : AllowedCpus();
  torch::set_num_threads(static_cast<int>(threads));
  if (spec_.loss().class_weights_size() > 0) {
    std::vector<float> w(spec_.loss().class_weights().begin(), spec_.loss().class_weights().end());
    class_weights_ = torch::tensor(w);
  }
  // As HF (through Accelerate): GPU LOCAL_RANK when this LibTorch has CUDA and one is
  // visible, unless use_cpu. trainerd makes a rank's own GPUs the visible ones.
  if (!args().use_cpu() && torch::cuda::is_available()) {
    const char* local_rank = std::getenv(kEnvLocalRank);
    const int64_t index = (local_rank ? std::atoi(local_rank) : 0) % static_cast<int64_t>(torch::cuda::device_count());
    device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
    model_->To(device_);
  }
  if (class_weights_.defined()) class_weights_on_device_ = class_weights_.to(device_);

  training_log_ = *TrainingLog::Open("", -1);
  state_.train_batch_size = args().per_device_train_batch_size();
  callbacks_.Add(std::make_shared<DefaultFlowCallback>());
  for (auto& cb : CreateCallbacks(spec_)) callbacks_.Add(std::move(cb));
  for (auto& cb : callbacks) callbacks_.Add(std::move(cb));
  callbacks_.on_init_end(args(), state_, control_);
}

Trainer::~Trainer() {
  // Pending checkpoint writes report to training_log_: finish them while it exists.
  checkpoint_store_.reset();
  strategy_.reset();
}

void Trainer::set_distributed(Distributed* distributed) {
  distributed_ = distributed;
  if (distributed_ != nullptr && distributed_->world_size() > 1) {
    // As DDP does at construction: every rank starts from rank 0's weights. Those the
    // model was built without are read from the same files by every rank.
    std::vector<torch::Tensor> state;
    for (auto& [name, t] : model_->NamedState()) {
      if (HasData(t)) state.push_back(t);
    }
    for (auto& [name, t] : model_->FrozenState()) {
      if (HasData(t)) state.push_back(t);
    }
    distributed_->Broadcast(state, /*root=*/0);
  }
  // The sharding reads them now, before anything computes with the model.
  if (model_->deferred_weights() != nullptr) strategy();
}

bool Trainer::is_world_process_zero() const { return distributed_ == nullptr || distributed_->is_main(); }

int Trainer::world_size() const { return distributed_ == nullptr ? 1 : distributed_->world_size(); }

double Trainer::MeanAcrossRanks(double value) { return MeanOverRanks(distributed_, value); }

ParallelStrategy& Trainer::strategy() {
  if (!strategy_) strategy_ = CreateParallelStrategy(args(), model_.get(), distributed_);
  return *strategy_;
}

Metrics Trainer::MeasureOptimizerMemory() {
  // The serialised state is what the optimizer holds: its tensors dominate the bytes.
  Metrics out = strategy().OptimizerStateMetrics(static_cast<double>(SerializedOptimizerBytes(*optimizer_)));
  if (const std::string line = optimizer_capabilities_->DescribeState(&out); !line.empty()) spdlog::info("{}", line);
  return out;
}

torch::Tensor Trainer::GatherInDatasetOrder(const torch::Tensor& local, int64_t n) {
  if (world_size() == 1) return local;
  // Every shard has the same length; stacking on dim 1 puts rank r's k-th example at
  // k * W + r, its position in the padded order.
  return torch::stack(distributed_->AllGather(local), 1).flatten(0, 1).narrow(0, 0, n);
}

std::unique_ptr<DataLoader> Trainer::get_train_dataloader() {
  DataLoaderOptions o;
  o.batch_size = args().per_device_train_batch_size();
  o.shuffle = true;
  o.drop_last = args().dataloader_drop_last();
  o.seed = static_cast<uint64_t>(args().data_seed());
  o.num_workers = args().dataloader_num_workers();
  o.num_replicas = world_size();
  o.rank = distributed_ == nullptr ? 0 : distributed_->rank();
  if (!data_.causal_lm) o.trim_pad_id = data_.pad_id;
  return std::make_unique<DataLoader>(&data_.train, &data_.normalization, o);
}

std::unique_ptr<DataLoader> Trainer::get_eval_dataloader(const Dataset* dataset) {
  if (dataset == nullptr) {
    if (!data_.eval) throw std::invalid_argument("evaluation needs an eval dataset (data.eval or data.eval_split)");
    dataset = &*data_.eval;
  }
  DataLoaderOptions o;
  o.batch_size = args().per_device_eval_batch_size();
  o.drop_last = false;  // HF evaluates every example
  o.num_workers = args().dataloader_num_workers();
  o.num_replicas = world_size();
  o.rank = distributed_ == nullptr ? 0 : distributed_->rank();
  if (!data_.causal_lm) o.trim_pad_id = data_.pad_id;
  return std::make_unique<DataLoader>(dataset, &data_.normalization, o);
}

std::unique_ptr<DataLoader> Trainer::get_test_dataloader(const Dataset& dataset) {
  return get_eval_dataloader(&dataset);
}

void Trainer::create_optimizer() {
  if (optimizer_) return;
  auto created = CreateOptimizer(args(), strategy().OptimizedParameters(), &optimizer_capabilities_);
  if (!created.ok()) throw StatusError(created.status());
  optimizer_ = std::move(*created);
  if (optimizer_capabilities_->StepsDuringBackward()) {
    optimizer_capabilities_->AttachBackwardSteps();
    if (args().max_grad_norm() > 0) {
      spdlog::warn("{} steps each weight during backward: max_grad_norm {} does not apply", args().optim(),
                   args().max_grad_norm());
    }
  }
}

void Trainer::create_scheduler(int64_t num_training_steps) {
  if (lr_schedule_) return;
  auto created = LrSchedule::Create(args(), num_training_steps);
  if (!created.ok()) throw StatusError(created.status());
  lr_schedule_ = std::move(*created);
}

void Trainer::create_optimizer_and_scheduler(int64_t num_training_steps) {
  create_optimizer();
  create_scheduler(num_training_steps);
}

torch::Tensor Trainer::Forward(Model& model, const torch::Tensor& inputs) {
  const bool fp16 = args().fp16() && device_.is_cuda();
  AutocastScope autocast(args().bf16(), fp16);
  torch::Tensor out = model.Forward(inputs);
  return args().bf16() || fp16 ? out.to(torch::kFloat) : out;
}

double Trainer::CountItems(const std::vector<Batch>& batches) const {
  double n = 0;
  for (const Batch& b : batches) {
    if (data_.causal_lm) {
      n += b.labels.narrow(1, 1, b.labels.size(1) - 1).ne(-100).sum().item<double>();
      continue;
    }
    n += class_weights_.defined() ? class_weights_.index_select(0, b.labels.cpu()).sum().item<double>()
                                  : static_cast<double>(b.size());
  }
  return n;
}

double Trainer::ItemsPerRank(const std::vector<Batch>& batches) {
  const double local = CountItems(batches);
  // Without class weights every rank's micro-batches hold the same number of examples.
  if (world_size() == 1 || !class_weights_.defined()) return local;
  return MeanAcrossRanks(local);
}

torch::Tensor Trainer::compute_loss(Model& model, const Batch& inputs,
                                    std::optional<double> num_items_in_batch, torch::Tensor* outputs) {
  torch::Tensor sum;
  if (data_.causal_lm && outputs == nullptr) {
    // With the fused (Liger) loss kernels on, the model makes the loss without
    // materialising the logits; otherwise `sum` stays undefined.
    AutocastScope autocast(args().bf16(), args().fp16() && device_.is_cuda());
    sum = model.CausalLmLossSum(inputs.inputs, inputs.labels, args().label_smoothing_factor());
  }
  if (!sum.defined()) {
    torch::Tensor out = Forward(model, inputs.inputs);
    if (outputs != nullptr) *outputs = out;
    if (data_.causal_lm) {
      sum = CausalLmLossSum(out, inputs.labels);
    } else if (spec_.loss().type() == "mse") {
      torch::Tensor predicted = out.reshape({inputs.size(), -1}).select(1, 0);
      sum = (predicted - inputs.labels.to(predicted.dtype())).square().sum();
    } else {
      auto options = F::CrossEntropyFuncOptions()
                         .reduction(torch::kSum)
                         .label_smoothing(args().label_smoothing_factor());
      if (class_weights_.defined()) options.weight(class_weights_on_device_);
      sum = F::cross_entropy(out, inputs.labels, options);
    }
  }
  const double items = num_items_in_batch ? *num_items_in_batch : CountItems({inputs});
  return sum / items;
}

torch::Tensor Trainer::CausalLmLossSum(const torch::Tensor& logits, const torch::Tensor& labels) const {
  // Position t predicts token t + 1: the shift happens here, as in HF's models.
  const int64_t l = labels.size(1);
  torch::Tensor shifted = logits.narrow(1, 0, l - 1).reshape({-1, logits.size(-1)});
  torch::Tensor targets = labels.narrow(1, 1, l - 1).reshape({-1});
  return F::cross_entropy(shifted, targets,
                          F::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(-100).label_smoothing(
                              args().label_smoothing_factor()));
}

Batch Trainer::PrepareInputs(const Batch& batch) const {
  if (device_.is_cpu()) return batch;
  return Batch{batch.inputs.to(device_, /*non_blocking=*/true), batch.labels.to(device_, /*non_blocking=*/true)};
}

torch::Tensor Trainer::training_step(Model& model, const Batch& inputs,
                                     std::optional<double> num_items_in_batch) {
  model.SetTraining(true);
  torch::Tensor loss = compute_loss(model, PrepareInputs(inputs), num_items_in_batch);
  // fp16: the scaled loss keeps small gradients from underflowing (LossScaler).
  (loss_scaler_ ? loss_scaler_->Scale(loss) : loss).backward();
  return loss.detach();
}

PredictionStepOutput Trainer::prediction_step(Model& model, const Batch& inputs,
                                              bool prediction_loss_only) {
  torch::NoGradGuard no_grad;
  torch::Tensor outputs;
  torch::Tensor loss = compute_loss(model, PrepareInputs(inputs), std::nullopt, &outputs);
  if (prediction_loss_only) return {loss.detach(), torch::Tensor(), inputs.labels};
  // A language model's logits are [B, L, vocab]: keep only the predicted tokens, as HF's
  // preprocess_logits_for_metrics does, so evaluation never holds every logit.
  if (data_.causal_lm) outputs = outputs.argmax(-1);
  return {loss.detach(), outputs.detach(), inputs.labels};
}

PredictionOutput Trainer::EvaluationLoop(DataLoader& loader, const std::string& prefix,
                                         bool prediction_loss_only) {
  const auto start = Clock::now();
  model_->SetTraining(false);
  loader.StartEpoch(0);
  // Sums of the real examples only: shards are padded to equal length across ranks.
  torch::Tensor sums = torch::zeros({2}, torch::kDouble);  // {loss * examples, examples}
  int64_t steps = 0;
  std::vector<torch::Tensor> outputs, labels;
  while (std::optional<Batch> batch = loader.Next()) {
    PredictionStepOutput o = prediction_step(*model_, *batch, prediction_loss_only);
    callbacks_.on_prediction_step(args(), state_, control_);
    const int64_t real = loader.RealExamplesInBatch(steps);
    sums[0] += o.loss.item<double>() * real;
    sums[1] += real;
    ++steps;
    // Metrics are computed on the CPU; gathering across ranks happens on the
    // collectives' device.
    if (o.logits.defined()) outputs.push_back(o.logits.cpu());
    labels.push_back(o.labels.cpu());
  }
  model_->SetTraining(true);
  if (world_size() > 1) distributed_->AllReduceSum(sums);
  const int64_t n = static_cast<int64_t>(sums[1].item<double>());
  PredictionOutput result;
  if (n == 0) throw std::invalid_argument(absl::StrCat("the ", prefix, " dataset is empty"));
  result.label_ids = GatherInDatasetOrder(torch::cat(labels), n);
  const double mean_loss = sums[0].item<double>() / static_cast<double>(n);
  result.metrics[prefix + "_loss"] = mean_loss;
  if (!outputs.empty()) {
    result.predictions = GatherInDatasetOrder(torch::cat(outputs), n);
    std::vector<std::string> names(spec_.metrics().begin(), spec_.metrics().end());
    for (const auto& [key, value] :
         data_.causal_lm ? ComputeTokenMetrics(names, result.predictions, result.label_ids, mean_loss)
                         : ComputeMetrics(names, result.predictions, result.label_ids, mean_loss, data_.regression)) {
      result.metrics[prefix + "_" + key] = value;
    }
  }
  const double seconds = SecondsSince(start);
  result.metrics[prefix + "_runtime"] = seconds;
  result.metrics[prefix + "_samples_per_second"] = n / seconds;
  result.metrics[prefix + "_steps_per_second"] = steps / seconds;
  return result;
}

absl::StatusOr<Metrics> Trainer::evaluate(const Dataset* dataset, const std::string& prefix) {
  return RunGuarded<Metrics>(absl::StrCat("evaluate (", prefix, ")"), [&] {
    std::unique_ptr<DataLoader> loader = get_eval_dataloader(dataset);
    PredictionOutput out = EvaluationLoop(*loader, prefix, /*prediction_loss_only=*/false);
    log(out.metrics, prefix);
    callbacks_.on_evaluate(args(), state_, control_, out.metrics);
    if (dataset == nullptr && prefix == "eval") last_evaluation_ = {state_.global_step, out.metrics};
    return out.metrics;
  });
}

std::optional<Metrics> Trainer::EvaluationOfCurrentWeights() const {
  if (!last_evaluation_ || last_evaluation_->first != state_.global_step) return std::nullopt;
  return last_evaluation_->second;
}

absl::StatusOr<PredictionOutput> Trainer::predict(const Dataset& dataset, const std::string& prefix) {
  return RunGuarded<PredictionOutput>(absl::StrCat("predict (", prefix, ")"), [&] {
    std::unique_ptr<DataLoader> loader = get_test_dataloader(dataset);
    PredictionOutput out = EvaluationLoop(*loader, prefix, /*prediction_loss_only=*/false);
    // As in HF, predict() does not go through log(): its metrics are returned and
    // given to on_predict; they still go to the log streams.
    training_log_->Record(prefix, CurrentProgress(), out.metrics);
    callbacks_.on_predict(args(), state_, control_, out.metrics);
    return out;
  });
}

Progress Trainer::CurrentProgress() const {
  return Progress{state_.global_step, state_.max_steps, state_.epoch};
}

void Trainer::log(const Metrics& logs, const std::string& kind) {
  Metrics record = logs;
  record["epoch"] = state_.epoch;
  record["step"] = static_cast<double>(state_.global_step);
  state_.log_history.push_back(record);
  training_log_->Record(kind, CurrentProgress(), logs);
  callbacks_.on_log(args(), state_, control_, logs);
}

absl::Status Trainer::save_model(const std::string& output_dir) {
  return RunGuardedStatus("save_model", [&]() -> absl::Status {
    const bool main = is_world_process_zero();
    if (main) std::filesystem::create_directories(output_dir);
    std::vector<std::string> weight_files;
    CpuMemoryTracker* memory = CpuMemoryTracker::Installed();
    const int64_t held_before = memory != nullptr ? memory->current() : 0;
    if (memory != nullptr) memory->ResetPeak();
    absl::Status weights = SaveWeightFiles(output_dir, &weight_files);
    if (memory != nullptr && weights.ok()) {
      // What gathering cost: one unit at a time where the weights are sharded.
      spdlog::info("save_model: the weights took at most {:.1f} MB more memory while written",
                   static_cast<double>(memory->peak() - held_before) / (1 << 20));
    }
    // TorchScript and the state dict hold the whole model in one file: where the
    // weights are sharded they are left out (the folder holds the weights); a LoRA
    // job's merged copy, asked for by merge_on_save, gathers the whole base then.
    const bool sharded = strategy().ShardsWeights();
    const bool merged = spec_.has_peft() && spec_.peft().merge_on_save();
    CheckpointFiles files;
    if (!sharded || merged) {
      strategy().WithFullWeights([&] { if (main) files = WholeModelFiles(/*merged_only=*/sharded); },
                                 /*write_back=*/false);
    }
    if (!main || !weights.ok()) return weights;
    if (sharded && (model_->HasTorchScript() || model_->WeightsFilePrefix() == "model")) {
      spdlog::info("save_model: the weights are sharded, so model.pt and model_state_dict.pt are not written");
    }
    files.merge(RunFiles());
    for (const auto& [name, bytes] : files) {
      const std::filesystem::path path = std::filesystem::path(output_dir) / name;
      std::filesystem::create_directories(path.parent_path());  // merged/ of a LoRA job
      if (absl::Status s = WriteFileAtomically(path.string(), bytes); !s.ok()) return s;
    }
    if (!args().hub_dir().empty()) {
      // The registry's copy is made from the files just written.
      for (const std::string& name : weight_files) {
        std::ifstream in(std::filesystem::path(output_dir) / name, std::ios::binary);
        std::stringstream bytes;
        bytes << in.rdbuf();
        if (!in.is_open() || bytes.fail()) return absl::InternalError(absl::StrCat("save_model: cannot read back ", name, " to export it"));
        files[name] = bytes.str();
      }
      ExportToHub("model", files);
    }
    return absl::OkStatus();
  });
}

}  // namespace trainerd
