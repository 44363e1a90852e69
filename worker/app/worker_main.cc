// trainer-worker: trains, evaluates and predicts as a job spec says.
//
// Exit status (protocol/worker_exit_codes.h): 0 success; 1 the run failed; 2 bad command
// line or invalid spec; 3 stopped by SIGTERM after saving a checkpoint; 4 out of memory.
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include <CLI/CLI.hpp>

#include "protocol/worker_command_line.h"
#include "protocol/worker_exit_codes.h"

#include "worker/app/worker_run.h"

int main(int argc, char** argv) {
  CLI::App app{
      "trainer-worker: trains a model as a job spec (YAML or JSON) says, with Hugging Face\n"
      "TrainingArguments names and meanings. Writes logs, metrics and the final model\n"
      "(model.pt for torch.jit.load, model_state_dict.pt for torch.load) to output_dir.\n\n"
      "Example:\n"
      "  trainer-worker --spec examples/fashion-mnist-cnn.yaml \\\n"
      "      --set training_args.learning_rate=1e-3 --set training_args.num_train_epochs=2\n",
      "trainer-worker"};
  trainerd::WorkerOptions options;
  app.add_option(trainerd::kWorkerFlagSpec, options.spec_path, "Job spec file (YAML or JSON)");
  app.add_option(trainerd::kWorkerFlagSet, options.overrides,
                 "Override a spec field, e.g. --set training_args.max_steps=100 (repeatable)");
  app.add_option("--metrics-fd", options.metrics_fd,
                 "Also write the JSON log records to this open file descriptor");
  std::string resume;
  app.add_option(trainerd::kWorkerFlagResume, resume,
                 "Resume: \"true\" for the newest valid checkpoint in output_dir, or a checkpoint "
                 "folder (same as --set training_args.resume_from_checkpoint=...)");
  app.add_option(trainerd::kWorkerFlagHeartbeatFile, options.heartbeat_file,
                 "Touch this file as training makes progress (used by trainerd to find hung workers)");
  app.add_option(trainerd::kWorkerFlagStopAtStep, options.stop_at_step,
                 "Stop at this step, after saving a checkpoint there (a sweep's rung); resuming continues")
      ->check(CLI::PositiveNumber);
  app.add_flag("--validate-only", options.validate_only,
               "Check the spec, print every problem, and exit");
  app.add_option("--consolidate", options.consolidate_checkpoint,
                 "Instead of training: write this checkpoint's weights (sharded by fsdp on any number of ranks, "
                 "or whole) as a Hugging Face folder in --output; the job's model and data must still be there");
  app.add_option("--output", options.consolidate_output, "The folder --consolidate writes");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (options.consolidate_checkpoint.empty() == options.spec_path.empty() ||
      options.consolidate_checkpoint.empty() != options.consolidate_output.empty()) {
    std::fprintf(stderr, "trainer-worker: give --spec, or --consolidate CHECKPOINT with --output DIR\n");
    return trainerd::kWorkerExitInvalidSpec;
  }
  if (!resume.empty()) options.overrides.push_back("training_args.resume_from_checkpoint=" + resume);
  // The last edge: an allocation that fails outside the guarded calls (e.g. under
  // trainerd's RLIMIT_AS) ends the run as "out of memory", which is not retried.
  try {
    if (!options.consolidate_checkpoint.empty()) return trainerd::ConsolidateCheckpoint(options);
    return trainerd::RunWorker(options);
  } catch (const std::bad_alloc&) {
  } catch (const std::exception& e) {
    if (std::string(e.what()).find("can't allocate memory") == std::string::npos) {
      std::fprintf(stderr, "trainer-worker: %s\n", e.what());
      return trainerd::kWorkerExitFailed;
    }
  }
  std::fprintf(stderr, "trainer-worker: %s\n", trainerd::OutOfMemoryMessage().c_str());
  return trainerd::kWorkerExitOutOfMemory;
}
