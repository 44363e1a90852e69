#include "worker/models/model_factory.h"
#include "worker/data/dataset_factory.h"
#include "worker/app/worker_run.h"
#include "worker/trainer/cpu_memory_tracker.h"

#include <sys/resource.h>

#include <malloc.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "protocol/worker_exit_codes.h"
#include "absl/strings/str_format.h"
#include "common/atomic_file.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"
#include "worker/checkpoint/checkpoint_store.h"
#include "protocol/job_layout.h"
#include "protocol/worker_environment.h"
#include "spec/confined_file.h"
#include "worker/data/dataset_reader.h"
#include "worker/distributed/distributed.h"
#include "worker/models/model.h"
#include "worker/trainer/large_block_cache.h"
#include "worker/trainer/tensorboard_callback.h"
#include "worker/trainer/torch_status.h"
#include "worker/trainer/trainer.h"
#include "worker/app/worker_reporter.h"

namespace trainerd {

std::string OutOfMemoryMessage() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    return absl::StrCat("out of memory (limit ", limit.rlim_cur >> 20, " MB)");
  }
  return "out of memory";
}

namespace {

namespace fs = std::filesystem;

// Process-wide settings measured to matter on this stack: large activation tensors
// page-fault with glibc's default mmap threshold (every step maps and unmaps them), and
// denormal floats slow late training.
void TuneProcess() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // Tensors over glibc's 32 MiB are fresh mmaps, faulted in page by page every batch:
  // keep freed large blocks for reuse, at most 1 GiB or an eighth of a memory limit.
  struct rlimit limit {};
  int64_t cap = int64_t{1} << 30;
  if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    cap = std::min<int64_t>(cap, static_cast<int64_t>(limit.rlim_cur / 8));
  }
  LargeBlockCache::Install(cap);
  at::globalContext().setFlushDenormal(true);
}

// `rank_tag` ("rank 1") prefixes every message when several ranks share a terminal.
void SetLogLevel(const std::string& level, const std::string& rank_tag = "") {
  // Human-readable logs go to stderr; stdout stays free for results.
  if (spdlog::get("trainer-worker") == nullptr) {
    spdlog::set_default_logger(spdlog::stderr_logger_mt("trainer-worker"));
  }
  spdlog::set_pattern(rank_tag.empty() ? "%Y-%m-%dT%H:%M:%S.%e %l %v"
                                       : "%Y-%m-%dT%H:%M:%S.%e %l [" + rank_tag + "] %v");
  if (level == "debug") spdlog::set_level(spdlog::level::debug);
  else if (level == "warning") spdlog::set_level(spdlog::level::warn);
  else if (level == "error") spdlog::set_level(spdlog::level::err);
  else if (level == "critical") spdlog::set_level(spdlog::level::critical);
  else spdlog::set_level(spdlog::level::info);
}

bool HoldsResults(const fs::path& dir) {
  if (!fs::is_directory(dir)) return false;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name == "model.pt" || name.rfind(kCheckpointPrefix, 0) == 0) return true;
  }
  return false;
}

std::string MetricsJson(const Metrics& m) {
  std::string out = "{\n";
  size_t i = 0;
  for (const auto& [k, v] : m) {
    absl::StrAppend(&out, "  \"", k, "\": ", std::isfinite(v) ? absl::StrFormat("%.10g", v) : "null",
                    ++i < m.size() ? ",\n" : "\n");
  }
  return out + "}\n";
}

absl::Status WritePredictions(const std::string& path, const PredictionOutput& out, bool regression) {
  std::string csv = regression ? "index,prediction,label\n" : "index,predicted_class,label\n";
  torch::Tensor predicted = regression ? out.predictions.reshape({out.label_ids.size(0), -1}).select(1, 0)
                                       : out.predictions.argmax(-1);
  predicted = predicted.to(torch::kDouble).contiguous();
  torch::Tensor labels = out.label_ids.to(torch::kDouble).contiguous();
  const double* p = predicted.data_ptr<double>();
  const double* l = labels.data_ptr<double>();
  for (int64_t i = 0; i < labels.size(0); ++i) absl::StrAppend(&csv, i, ",", p[i], ",", l[i], "\n");
  return WriteFileAtomically(path, csv);
}

std::atomic<bool> g_stop_requested{false};

extern "C" void OnSigterm(int) { g_stop_requested.store(true); }

// SIGTERM (trainerd's cancel and shutdown): save a checkpoint at the end of the current
// step and stop, so that the job can resume exactly where it stopped.
class StopOnSignalCallback : public TrainerCallback {
 public:
  void on_step_end(const TrainingArguments& args, TrainerState&, TrainerControl& control) override {
    if (!g_stop_requested.load()) return;
    control.should_training_stop = true;
    control.interrupted = true;
    if (args.save_strategy() != "no") control.should_save = true;
  }
};

// Touches a file (at most once a second) whenever the loop makes progress.
class HeartbeatCallback : public TrainerCallback {
 public:
  explicit HeartbeatCallback(std::string path) : path_(std::move(path)) { Beat(/*force=*/true); }
  void on_step_end(const TrainingArguments&, TrainerState&, TrainerControl&) override { Beat(); }
  void on_substep_end(const TrainingArguments&, TrainerState&, TrainerControl&) override { Beat(); }
  void on_prediction_step(const TrainingArguments&, TrainerState&, TrainerControl&) override { Beat(); }
  void on_save(const TrainingArguments&, TrainerState&, TrainerControl&) override { Beat(); }
  void Beat(bool force = false) {
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::seconds(1)) return;
    last_ = now;
    std::FILE* f = std::fopen(path_.c_str(), "w");
    if (f != nullptr) std::fclose(f);  // truncating open updates the mtime
  }

 private:
  std::string path_;
  std::chrono::steady_clock::time_point last_;
};

// Whether training_args.report_to names `integration` ("all" names every one).
bool ReportsTo(const TrainingArguments& args, const std::string& integration) {
  for (const std::string& name : args.report_to()) {
    if (name == integration || name == "all") return true;
  }
  return false;
}

int Fail(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kResourceExhausted) {
    spdlog::error("{} ({})", OutOfMemoryMessage(), std::string(status.message()));
    return kWorkerExitOutOfMemory;
  }
  spdlog::error("{}", std::string(status.message()));
  return status.code() == absl::StatusCode::kInvalidArgument ? kWorkerExitInvalidSpec : kWorkerExitFailed;
}

// A failure to load the job's data or model. What the spec names and cannot be had (a
// file refused, missing or not as the spec says) fails the same way at every retry: it
// is the spec's (exit 2, not retried), as a check at submission would have said.
int FailLoading(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      spdlog::error("{}", std::string(status.message()));
      return kWorkerExitInvalidSpec;
    default:
      return Fail(status);
  }
}

// The spec at `path` with `overrides` and HF's defaults, checked against trainerd's
// policy: started by trainerd, the worker checks it again, so that a file swapped after
// submission is refused here, against the memory each of the job's `ranks` may hold.
// INVALID_ARGUMENT lists every problem.
absl::StatusOr<trainer::v1::JobSpec> LoadCheckedSpec(const std::string& path, const std::vector<std::string>& overrides,
                                                     int ranks) {
  std::vector<std::string> warnings;
  absl::StatusOr<trainer::v1::JobSpec> spec = LoadJobSpecFile(path, overrides, &warnings);
  if (!spec.ok()) return spec;
  for (const std::string& w : warnings) spdlog::warn("{}: {}", path, w);
  ApplyDefaults(&*spec);
  SpecCheckOptions check;
  check.policy = SpecPolicyFromEnvironment();
  check.ranks = ranks;
  if (absl::Status s = ValidateJobSpec(*spec, check); !s.ok()) return s;
  return spec;
}

// Refuses to train over a finished run unless asked, creates output_dir, and (rank 0)
// writes the spec that runs there.
absl::Status PrepareOutputDir(const trainer::v1::JobSpec& spec, bool resuming, bool main_rank) {
  const auto& args = spec.training_args();
  const fs::path output_dir = args.output_dir();
  if (args.do_train() && !resuming && HoldsResults(output_dir) && !args.overwrite_output_dir()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "training_args.output_dir: ", output_dir.string(),
        " already holds a trained model or checkpoints; set resume_from_checkpoint: true to continue,"
        " overwrite_output_dir: true to start over, or pick another folder"));
  }
  std::error_code ec;
  fs::create_directories(output_dir, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("training_args.output_dir: ", ec.message()));
  if (!main_rank) return absl::OkStatus();
  // A worker killed while saving leaves its temporary folders; they go before this run
  // saves anything.
  std::vector<std::string> folders = {output_dir.string()};
  if (!args.hub_dir().empty()) folders.push_back((fs::path(args.hub_dir()) / args.hub_model_id()).string());
  for (const std::string& folder : folders) {
    for (const std::string& line : CheckpointStore::RecoverInterruptedWrites(folder)) {
      spdlog::warn("An interrupted save: {}", line);
    }
  }
  return WriteFileAtomically((output_dir / "job_spec.json").string(), JobSpecToJson(spec));
}

// A resumed run reads its text with the tokenizer it trained, not a new one.
void UseTrainedTokenizer(trainer::v1::JobSpec* spec) {
  if (!spec->data().tokenizer().path().empty()) return;
  const std::string output_dir = spec->training_args().output_dir();
  std::string from = spec->training_args().resume_from_checkpoint();
  if (from == "true") from = CheckpointStore::LatestValid(output_dir, [](const std::string&) {}).value_or("");
  if (!from.empty() && fs::exists(fs::path(from) / "tokenizer.model")) {
    spec->mutable_data()->mutable_tokenizer()->set_path((fs::path(from) / "tokenizer.model").string());
  }
}

// HF's main(): train, save, evaluate, predict as the spec says; rank 0 writes the
// model, the predictions and all_results.json. Returns the worker's exit status.
int RunJob(Trainer& trainer, const trainer::v1::JobSpec& spec, const std::optional<Dataset>& test, bool main_rank,
           bool causal_lm, bool regression) {
  const auto& args = spec.training_args();
  const fs::path output_dir = args.output_dir();
  Metrics all_results;
  if (args.do_train()) {
    absl::StatusOr<TrainOutput> out = trainer.train();
    if (!out.ok()) return Fail(out.status());
    all_results.insert(out->metrics.begin(), out->metrics.end());
    if (g_stop_requested.load()) {
      spdlog::warn("Stopped by SIGTERM at step {}; the latest checkpoint resumes it", trainer.state().global_step);
      return kExitStopped;
    }
  }
  if (args.do_train()) {
    if (absl::Status s = trainer.save_model(output_dir.string()); !s.ok()) return Fail(s);
  }
  if (args.do_train() && main_rank) {
    // HF's trainer.save_state(): the final TrainerState beside the model.
    if (absl::Status s = WriteFileAtomically((output_dir / kTrainerStateFile).string(),
                                             TrainerStateToJson(trainer.state()));
        !s.ok()) {
      return Fail(s);
    }
    const Model& model = trainer.model();
    spdlog::info("Saved the final model to {} ({})", output_dir.string(),
                 model.HasTorchScript()                        ? "model.pt, model_state_dict.pt, model.safetensors"
                 : model.WeightsFilePrefix() == "adapter_model" ? "a peft adapter folder: adapter_config.json, "
                                                                  "adapter_model.safetensors"
                                                                : "a Hugging Face folder: config.json, model.safetensors");
  }
  if (args.do_eval()) {
    // Training that evaluated its last step has evaluated these very weights already.
    std::optional<Metrics> done = trainer.EvaluationOfCurrentWeights();
    if (done) {
      spdlog::info("The final evaluation is step {}'s: the weights have not changed since", trainer.state().global_step);
      all_results.insert(done->begin(), done->end());
    } else {
      absl::StatusOr<Metrics> eval = trainer.evaluate();
      if (!eval.ok()) return Fail(eval.status());
      all_results.insert(eval->begin(), eval->end());
    }
  }
  if (args.do_predict() && test) {
    absl::StatusOr<PredictionOutput> out = trainer.predict(*test, "test");
    if (!out.ok()) return Fail(out.status());
    all_results.insert(out->metrics.begin(), out->metrics.end());
    if (main_rank && !causal_lm) {
      if (absl::Status s = WritePredictions((output_dir / "predictions.csv").string(), *out, regression); !s.ok()) {
        return Fail(s);
      }
    }
  }
  if (!main_rank) return 0;
  all_results["epoch"] = trainer.state().epoch;
  if (absl::Status s = WriteFileAtomically((output_dir / "all_results.json").string(), MetricsJson(all_results)); !s.ok()) {
    return Fail(s);
  }
  return 0;
}

}  // namespace

int ConsolidateCheckpoint(const WorkerOptions& options) {
  TuneProcess();
  SetLogLevel("info");
  const fs::path checkpoint = options.consolidate_checkpoint;
  if (absl::Status s = CheckpointStore::Verify(checkpoint.string()); !s.ok()) return Fail(s);
  const std::string spec_path = (checkpoint / "training_args.json").string();
  absl::StatusOr<trainer::v1::JobSpec> spec =
      LoadCheckedSpec(spec_path, {"training_args.resume_from_checkpoint=" + checkpoint.string()}, /*ranks=*/1);
  if (!spec.ok()) {
    std::cerr << "invalid job spec " << spec_path << ":\n" << spec.status().message() << "\n";
    return kWorkerExitInvalidSpec;
  }
  spec->mutable_training_args()->clear_hub_dir();  // a folder for the person who asked, not an export
  UseTrainedTokenizer(&*spec);
  torch::manual_seed(static_cast<uint64_t>(spec->training_args().seed()));
  absl::StatusOr<DataAndModel> loaded = LoadDataAndModel(*spec);
  if (!loaded.ok()) return FailLoading(loaded.status());
  Trainer trainer(*spec, std::move(loaded->model), std::move(loaded->data), {});
  auto log = TrainingLog::Open("", -1);
  if (!log.ok()) return Fail(log.status());
  trainer.set_training_log(std::move(*log));
  if (absl::Status s = trainer.consolidate_checkpoint(checkpoint.string(), options.consolidate_output); !s.ok()) {
    return Fail(s);
  }
  spdlog::info("Wrote the weights of {} to {} as a Hugging Face folder", checkpoint.string(),
               options.consolidate_output);
  return 0;
}

int RunWorker(const WorkerOptions& options) {
  // A stop (Slurm's preemption, trainerd's cancel) that comes while the worker starts is
  // kept for the first step, which saves a checkpoint and stops, instead of killing it
  // before it has one.
  std::signal(SIGTERM, OnSigterm);
  // Counts what every tensor holds from the start, for train_peak_memory_mb.
  CpuMemoryTracker::Install();
  TuneProcess();
  SetLogLevel("info");
  absl::StatusOr<DistributedConfig> dist_config = DistributedConfigFromEnvironment();
  absl::StatusOr<trainer::v1::JobSpec> spec =
      LoadCheckedSpec(options.spec_path, options.overrides, dist_config.ok() ? dist_config->world_size : 1);
  if (!spec.ok()) {
    std::cerr << "invalid job spec " << options.spec_path << ":\n" << spec.status().message() << "\n";
    return kWorkerExitInvalidSpec;
  }
  if (options.validate_only) {
    std::cout << options.spec_path << ": valid\n";
    return 0;
  }
  // And once more as each file is opened (a link retargeted after this check).
  ConfineReads(ReadRoots(spec->training_args().output_dir(), SpecPolicyFromEnvironment()));
  const auto& args = spec->training_args();
  if (!dist_config.ok()) return Fail(dist_config.status());
  dist_config->timeout = std::chrono::seconds(args.ddp_timeout());
  const bool main_rank = dist_config->rank == 0;
  // HF: rank 0 logs at log_level, the others at log_level_replica; with
  // log_on_each_node every node's local rank 0 counts as a main process for logging.
  const bool logs_as_main = main_rank || (args.log_on_each_node() && dist_config->local_rank == 0);
  SetLogLevel(logs_as_main ? args.log_level() : args.log_level_replica(),
              dist_config->world_size > 1 ? absl::StrCat("rank ", dist_config->rank) : "");
  const fs::path output_dir = args.output_dir();
  const bool resuming = !args.resume_from_checkpoint().empty() && args.resume_from_checkpoint() != "false";
  if (absl::Status s = PrepareOutputDir(*spec, resuming, main_rank); !s.ok()) return Fail(s);

  // Under trainerd: heartbeats over its WorkerService, whose
  // "stop" answer works like SIGTERM. Started before the data and the model, so that
  // gRPC's threads exist before memory runs short under trainerd's RLIMIT_AS.
  std::shared_ptr<WorkerReporter> reporter =
      WorkerReporter::FromEnvironment([](const std::string&) { g_stop_requested.store(true); });
  std::shared_ptr<HeartbeatCallback> heartbeat;
  if (!options.heartbeat_file.empty()) heartbeat = std::make_shared<HeartbeatCallback>(options.heartbeat_file);
  if (resuming) UseTrainedTokenizer(&*spec);
  torch::manual_seed(static_cast<uint64_t>(args.seed()));  // HF's set_seed, before the model exists
  absl::StatusOr<DataAndModel> loaded = LoadDataAndModel(*spec);
  if (!loaded.ok()) return FailLoading(loaded.status());
  const bool regression = loaded->data.regression;
  const bool causal_lm = loaded->data.causal_lm;
  const std::optional<Dataset> test = loaded->data.test;

  if (heartbeat) heartbeat->Beat(/*force=*/true);  // loading data can take a while
  std::vector<std::shared_ptr<TrainerCallback>> callbacks = {std::make_shared<StopOnSignalCallback>()};
  if (heartbeat) callbacks.push_back(heartbeat);
  if (options.stop_at_step > 0) callbacks.push_back(std::make_shared<StopAtStepCallback>(options.stop_at_step));
  if (reporter) callbacks.push_back(reporter);
  if (main_rank && ReportsTo(args, "tensorboard")) {
    auto writer = TensorBoardWriter::Create(TensorBoardDir(args, resuming));
    if (!writer.ok()) return Fail(writer.status());
    spdlog::info("TensorBoard: scalars go to {}", (*writer)->path());
    callbacks.push_back(std::make_shared<TensorBoardCallback>(std::move(*writer)));
  }
  Trainer trainer(*spec, std::move(loaded->model), std::move(loaded->data), callbacks);
  std::unique_ptr<Distributed> distributed;
  if (dist_config->world_size > 1) {
    spdlog::info("Joining {} ranks through the store at {}:{}", dist_config->world_size, dist_config->store_host,
                 dist_config->store_port);
    absl::StatusOr<std::unique_ptr<Distributed>> joined = Distributed::Connect(*dist_config, trainer.device());
    if (!joined.ok()) return Fail(joined.status());
    distributed = std::move(*joined);
  }
  if (absl::Status s = RunGuardedStatus("joining the ranks", [&] {
        trainer.set_distributed(distributed.get());
        return absl::OkStatus();
      });
      !s.ok()) {
    return Fail(s);
  }
  if (const CpuMemoryTracker* memory = CpuMemoryTracker::Installed()) {
    // What the data, the model and its sharding took at most before training began.
    spdlog::info("Loading took at most {:.1f} MB of memory", static_cast<double>(memory->peak()) / (1 << 20));
  }
  // Rank 0 writes the job's log and results; the other ranks compute the same numbers.
  // A new training run starts the log afresh (overwrite_output_dir); resuming,
  // evaluating alone and every attempt under trainerd (which reads the file as it grows,
  // by offset) add to it.
  const bool append = resuming || !args.do_train() || std::getenv(kEnvAttempt) != nullptr;
  auto log = main_rank ? TrainingLog::Open((output_dir / kTrainingLogFile).string(), options.metrics_fd, append)
                       : TrainingLog::Open("", -1);
  if (!log.ok()) return Fail(log.status());
  trainer.set_training_log(std::move(*log));

  return RunJob(trainer, *spec, test, main_rank, causal_lm, regression);
}

}  // namespace trainerd
