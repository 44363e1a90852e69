// Trainer: the training and evaluation loop, after Hugging Face's transformers.Trainer.
//
// Usage:
//   Trainer trainer(spec, std::move(model), std::move(data));
//   absl::StatusOr<TrainOutput> out = trainer.train();
//   absl::StatusOr<Metrics> eval = trainer.evaluate();
//
// Customisation works as in HF: subclass and override the virtual methods below. They
// keep HF's names (compute_loss, training_step, ...) so that HF users find them; they
// may throw (LibTorch does), and train()/evaluate()/predict() turn any exception into
// a Status with context, so nothing escapes the worker's edge.
//
// Threading: a Trainer is used from one thread. Data loading may use helper threads
// (dataloader_num_workers), owned and joined by the DataLoader.
#ifndef TRAINERD_WORKER_TRAINER_TRAINER_H_
#define TRAINERD_WORKER_TRAINER_TRAINER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/optim/optimizer.h>

#include "absl/status/statusor.h"
#include "trainer/v1/job_spec.pb.h"
#include "worker/data/data_loader.h"
#include "worker/data/dataset.h"
#include "worker/trainer/loss_scaler.h"
#include "worker/trainer/loop_state.h"
#include "worker/trainer/lr_schedule.h"
#include "worker/trainer/metrics_map.h"
#include "worker/models/model.h"
#include "worker/optim/optimizer_capabilities.h"
#include "worker/checkpoint/checkpoint_store.h"
#include "worker/checkpoint/checkpointer.h"
#include "worker/trainer/trainer_callback.h"
#include "worker/trainer/trainer_state.h"
#include "worker/trainer/training_log.h"

namespace trainerd {

class Distributed;
class ParallelStrategy;

struct TrainOutput {
  int64_t global_step = 0;
  double training_loss = 0;
  Metrics metrics;  // train_runtime, train_samples_per_second, train_loss, ...
};

struct PredictionStepOutput {
  torch::Tensor loss;    // mean loss over the batch (undefined without labels)
  torch::Tensor logits;  // undefined when prediction_loss_only
  torch::Tensor labels;
};

struct PredictionOutput {
  torch::Tensor predictions;  // model outputs for every example, in dataset order
  torch::Tensor label_ids;
  Metrics metrics;            // prefixed: eval_loss, test_accuracy, ...
};

class Trainer {
 public:
  // `spec` must have defaults applied and be valid (see spec/). Sets LibTorch's
  // intra-op thread count from training_args.torch_num_threads.
  // `callbacks` run after the built-in DefaultFlowCallback and those the spec names.
  Trainer(trainer::v1::JobSpec spec, std::unique_ptr<Model> model, DatasetBundle data,
          std::vector<std::shared_ptr<TrainerCallback>> callbacks = {});
  virtual ~Trainer();

  // Trains for max_steps or num_train_epochs, evaluating, logging and saving
  // checkpoints as configured. Resumes from training_args.resume_from_checkpoint when
  // set: "true" for the newest valid checkpoint in output_dir, else a checkpoint folder.
  virtual absl::StatusOr<TrainOutput> train();
  // Evaluates on `dataset` (default: the eval split); metrics get `prefix`_ names.
  virtual absl::StatusOr<Metrics> evaluate(const Dataset* dataset = nullptr,
                                           const std::string& prefix = "eval");
  // Runs the model over `dataset`, returning outputs and (with labels) metrics.
  virtual absl::StatusOr<PredictionOutput> predict(const Dataset& dataset,
                                                   const std::string& prefix = "test");

  // Writes the model to `output_dir` (created if needed), each file atomically (every
  // rank calls it; rank 0 writes): the weights as a Hugging Face folder
  // (model.safetensors or its shards and index, written one unit at a time: a sharded
  // model is never gathered whole), the run's files, and where the weights are whole
  // on every rank, model.pt (TorchScript) and model_state_dict.pt (torch.load-able).
  // With hub_dir set, also exports the model there (every hub_strategy exports at end).
  absl::Status save_model(const std::string& output_dir);
  // Loads the weights of `checkpoint` (any checkpoint of this job's spec: whole weights,
  // or slices saved by any number of ranks) and writes them to `output_dir` as
  // save_model does, on one rank: Accelerate's merge-weights, without another tool.
  absl::Status consolidate_checkpoint(const std::string& checkpoint, const std::string& output_dir);

  // Adds a callback after those given to the constructor (it misses on_init_end).
  void add_callback(std::shared_ptr<TrainerCallback> callback) { callbacks_.Add(std::move(callback)); }

  // The metrics of the latest evaluation on the eval split if it was taken at the
  // current global step with the current weights (an evaluation at the last step of
  // training): the final evaluation need not run again.
  std::optional<Metrics> EvaluationOfCurrentWeights() const;

  Model& model() { return *model_; }
  // Where the model trains: the CPU, or this rank's GPU (see use_cpu).
  const torch::Device& device() const { return device_; }
  const TrainerState& state() const { return state_; }
  const TrainerControl& control() const { return control_; }
  const trainer::v1::TrainingArguments& args() const { return spec_.training_args(); }
  const DatasetBundle& data() const { return data_; }
  // Data parallelism: makes this Trainer one rank of `distributed` (which must outlive
  // it) and copies rank 0's parameters and buffers to every rank. Call before train(),
  // on every rank. Data is sharded, gradients averaged, metrics reduced; rank 0 writes
  // the logs and checkpoints. A model built with deferred weights gets its sharding
  // here, which reads them. Call it (with null for one rank) before anything else.
  void set_distributed(Distributed* distributed);
  // HF's names: whether this process is rank 0, and the number of ranks.
  bool is_world_process_zero() const;
  int world_size() const;

  // Where JSON log records go; default: only the human lines. Set before train().
  void set_training_log(std::unique_ptr<TrainingLog> log) { training_log_ = std::move(log); }

  // ---- Customisation points (HF names) ----
  virtual std::unique_ptr<DataLoader> get_train_dataloader();
  virtual std::unique_ptr<DataLoader> get_eval_dataloader(const Dataset* dataset = nullptr);
  virtual std::unique_ptr<DataLoader> get_test_dataloader(const Dataset& dataset);
  // Records `logs` (adds epoch and step) in log_history and the log streams.
  virtual void log(const Metrics& logs, const std::string& kind = "train");
  virtual void create_optimizer();
  virtual void create_scheduler(int64_t num_training_steps);
  virtual void create_optimizer_and_scheduler(int64_t num_training_steps);
  // The loss of one (micro-)batch. With num_items_in_batch (the examples in the whole
  // accumulated batch, or their total class weight) the loss is sum / num_items_in_batch,
  // so the gradients of gradient_accumulation_steps micro-batches add up to exactly those
  // of one large batch (HF's 2024 fix); without it, the batch mean. `outputs`, when
  // given, receives the model's outputs.
  virtual torch::Tensor compute_loss(Model& model, const Batch& inputs,
                                     std::optional<double> num_items_in_batch = std::nullopt,
                                     torch::Tensor* outputs = nullptr);
  // Forward + backward of one micro-batch; returns the detached loss.
  virtual torch::Tensor training_step(Model& model, const Batch& inputs,
                                      std::optional<double> num_items_in_batch);
  virtual PredictionStepOutput prediction_step(Model& model, const Batch& inputs,
                                               bool prediction_loss_only);

 protected:
  // The number of items that normalise the loss of `batches` (see compute_loss).
  virtual double CountItems(const std::vector<Batch>& batches) const;
  // Causal LM: the summed cross-entropy of logits [B, L, V] predicting labels [B, L]
  // shifted by one (labels of -100 are ignored).
  torch::Tensor CausalLmLossSum(const torch::Tensor& logits, const torch::Tensor& labels) const;
  // The num_items_in_batch each rank divides its loss sum by, so that averaging the
  // ranks' gradients gives the gradient of the whole global batch: the global count
  // over world_size (all-reduced only where ranks' counts can differ: class weights).
  double ItemsPerRank(const std::vector<Batch>& batches);
  torch::Tensor Forward(Model& model, const torch::Tensor& inputs);
  // HF's _prepare_inputs: the batch on the training device.
  Batch PrepareInputs(const Batch& batch) const;
  torch::optim::Optimizer* optimizer() { return optimizer_.get(); }
  LrSchedule* lr_scheduler() { return lr_schedule_.get(); }

 private:
  // train(), top to bottom in HF's order: prepare, then each epoch hands each
  // optimizer update to TrainStep, then finish (trainer_loop.cc).
  struct TrainRun;
  absl::StatusOr<TrainOutput> TrainLoop();
  // Sizes the run, creates the optimizer and schedule, checks the options, resumes.
  absl::Status PrepareTraining(TrainRun& run);
  // fp16's loss scaler, torch_compile, fused kernels, gradient checkpointing, NEFTune.
  absl::Status ApplySpeedOptions();
  void LogTrainingPlan(const TrainRun& run);
  // The trained parameters' share of all of them, in percent (peft's trainable%).
  double TrainablePercent() const;
  void TrainEpoch(TrainRun& run, int64_t epoch);
  // One optimizer update over `group`'s micro-batches; returns the gradient norm (NaN
  // when not clipped).
  double TrainStep(TrainRun& run, std::vector<Batch>& group);
  // MaybeLogSaveEvaluate with the throughput since the last log.
  void LogSaveEvaluate(TrainRun& run, double grad_norm);
  // Waits for the checkpoints, loads the best model if asked, and reports the run.
  absl::StatusOr<TrainOutput> FinishTraining(const TrainRun& run);
  PredictionOutput EvaluationLoop(DataLoader& loader, const std::string& prefix,
                                  bool prediction_loss_only);
  // Makes the stop and save flags the same on every rank (any rank's request wins).
  void SyncControlAcrossRanks();
  // HF's _maybe_log_save_evaluate.
  void MaybeLogSaveEvaluate(double grad_norm, double seconds_since_log);
  // Evaluates inside the loop: steps reduce_lr_on_plateau and tracks the best metric.
  // Returns true when the metric is a new best.
  bool EvaluateDuringTraining();
  Progress CurrentProgress() const;
  int64_t StepsFromArg(double value) const;
  // The mean of `value` over the ranks (the value itself on one rank). Every rank
  // must call it at the same point.
  double MeanAcrossRanks(double value);
  // Joins per-rank evaluation outputs (rank r holds examples r, r + W, ...) into dataset
  // order, dropping the shards' padding: the first `n` examples.
  torch::Tensor GatherInDatasetOrder(const torch::Tensor& local, int64_t n);
  // Checkpoints (trainer_checkpoint.cc).
  std::string ResolveResumeCheckpoint() const;
  // Registers every stateful part of the run with checkpointer_ (once the optimizer,
  // the schedule and the loss scaler exist).
  void BuildCheckpointer();
  // The checkpoint part of the trained weights: the strategy's slices, or whole.
  std::unique_ptr<Stateful> MakeWeightsPart();
  void LoadCheckpoint(const std::string& dir);
  // The largest weights file of a save: model.max_shard_size for a Hugging Face model
  // (5GB by default), no limit for the others (their weights stay one file).
  int64_t MaxShardBytes() const;
  // Set on the first MaxShardBytes (it asks the model for its files).
  mutable std::optional<int64_t> max_shard_bytes_;
  void SaveCheckpoint();
  // Writes the weights files of save_model into `output_dir` (rank 0; every rank calls
  // it), one unit at a time (ParallelStrategy::ForEachWholeUnit); `written` receives
  // their names.
  absl::Status SaveWeightFiles(const std::string& output_dir, std::vector<std::string>* written);
  // The files of save_model made from the whole model at once (its weights whole, see
  // WithFullWeights): model.pt, model_state_dict.pt and a LoRA job's merged/ copy, or
  // with `merged_only` that copy alone.
  CheckpointFiles WholeModelFiles(bool merged_only);
  // The job spec as it ran, the tokenizer, and the model's config.json and tokenizer
  // configs (a transformers architecture's): in every checkpoint and model export.
  CheckpointFiles RunFiles() const;
  void ExportToHub(const std::string& name, const CheckpointFiles& files) const;

  trainer::v1::JobSpec spec_;
  std::unique_ptr<Model> model_;
  DatasetBundle data_;
  TrainerState state_;
  TrainerControl control_;
  CallbackHandler callbacks_;
  LoopState loop_;
  std::string resumed_from_;
  // The latest evaluation on the eval split and the step it was taken at; reset when
  // the weights change without a step (the best model reloaded).
  std::optional<std::pair<int64_t, Metrics>> last_evaluation_;
  // Where every rank writes its own share of a checkpoint (declared before the store,
  // whose last write uses it).
  std::unique_ptr<CheckpointWriters> checkpoint_writers_;
  std::unique_ptr<CheckpointStore> checkpoint_store_;
  std::unique_ptr<Checkpointer> checkpointer_;  // built at the first save or load
  Stateful* weights_part_ = nullptr;            // checkpointer_'s: loads the best model
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  // What optimizer_ can do beyond LibTorch's interface (set with it).
  OptimizerCapabilities* optimizer_capabilities_ = &OptimizerCapabilities::None();
  std::unique_ptr<LrSchedule> lr_schedule_;
  std::unique_ptr<TrainingLog> training_log_;
  torch::Tensor class_weights_;            // on the CPU, for counting
  torch::Tensor class_weights_on_device_;  // for the loss
  torch::Device device_ = torch::kCPU;
  bool compiled_ = false;  // torch_compile: model_ runs its forward as TorchScript
  std::unique_ptr<LossScaler> loss_scaler_;  // fp16 only
  Distributed* distributed_ = nullptr;
  // How the ranks share a step (one rank, DDP, ZeRO-1); made with the optimizer.
  std::unique_ptr<ParallelStrategy> strategy_;
  ParallelStrategy& strategy();
  // This rank's optimizer-state size (and with GaLore the targeted weights' state against
  // AdamW's); logged once. All ranks call it.
  Metrics MeasureOptimizerMemory();
  Metrics optimizer_memory_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TRAINER_TRAINER_H_
