#include "worker/trainer/loop_state.h"

#include <stdexcept>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "worker/checkpoint/checkpointer.h"
#include "worker/distributed/distributed.h"

namespace trainerd {

int LoopStatePart::world_size() const { return distributed_ == nullptr ? 1 : distributed_->world_size(); }

void LoopStatePart::SaveState(CheckpointContents& out) {
  // The running loss sums become the ranks' means, so that rank 0's loop_state.json
  // holds the job's; later sums stay right because the mean is linear.
  loop_->loss_since_log = MeanOverRanks(distributed_, loop_->loss_since_log);
  loop_->total_loss = MeanOverRanks(distributed_, loop_->total_loss);
  nlohmann::json& loop = out.Json(kTrainingStateFile);
  loop["world_size"] = world_size();
  loop["parallel_strategy"] = strategy_;
  loop["optimizer_sharding"] = strategy_ == "zero1";  // what versions before parallel_strategy read
  loop["epoch"] = loop_->epoch;
  loop["batches_done"] = loop_->batches_done;
  // What a run of another number of ranks continues from: rank r's i-th example of an
  // epoch is example r + W*i of the epoch's order, so the ranks' batches so far are the
  // order's first batches_done * batch * W examples.
  loop["epoch_examples_done"] = loop_->batches_done * batch_size_ * world_size();
  loop["loss_since_log"] = loop_->loss_since_log;
  loop["last_logged_step"] = loop_->last_logged_step;
  loop["total_loss"] = loop_->total_loss;
  loop["total_samples"] = loop_->total_samples;
}

void LoopStatePart::LoadState(const CheckpointContents& in) {
  const nlohmann::json& loop = in.NeedJson(kTrainingStateFile);
  const int64_t saved_world = loop.value("world_size", int64_t{1});
  if (saved_world != world_size() && !reshards_) {
    // Each rank's data position and RNG state belong to the sharding they were saved
    // with; carrying them to another world size would silently change the data order.
    throw std::invalid_argument(absl::StrCat(
        "training_args.resume_from_checkpoint: ", in.dir(), " was saved by ", saved_world, " rank(s) and this run has ",
        world_size(), "; resume it with ", saved_world, " rank(s) (resources.ranks), or start over from its weights"
        " with a new output_dir"));
  }
  // Checkpoints from before parallel_strategy recorded only optimizer_sharding.
  const std::string saved_strategy =
      loop.value("parallel_strategy", loop.value("optimizer_sharding", false) ? "zero1" : (saved_world > 1 ? "ddp" : "single"));
  if (saved_strategy != strategy_) {
    throw std::invalid_argument(absl::StrCat("training_args.optimizer_sharding: ", in.dir(), " was saved with the ",
                                             saved_strategy, " strategy and this run uses ", strategy_,
                                             "; resume with the same setting"));
  }
  try {
    loop_->epoch = loop.at("epoch").get<int64_t>();
    loop_->batches_done = loop.at("batches_done").get<int64_t>();
    loop_->loss_since_log = loop.at("loss_since_log").get<double>();
    loop_->last_logged_step = loop.at("last_logged_step").get<int64_t>();
    loop_->total_loss = loop.at("total_loss").get<double>();
    loop_->total_samples = loop.at("total_samples").get<int64_t>();
    if (saved_world != world_size()) {
      const int64_t examples = loop.at("epoch_examples_done").get<int64_t>();
      const int64_t global_batch = batch_size_ * world_size();
      loop_->batches_done = examples / global_batch;
      spdlog::warn("{} was saved by {} rank(s) and this run has {}: the weights and optimizer state are cut again for "
                   "{} rank(s); epoch {} goes on after its first {} examples (the saved run used {}), steps, schedule "
                   "and logged losses continue",
                   in.dir(), saved_world, world_size(), world_size(), loop_->epoch, loop_->batches_done * global_batch,
                   examples);
    }
  } catch (const nlohmann::json::exception& e) {
    in.Corrupt(absl::StrCat(kTrainingStateFile, ": ", e.what()));
  }
}

}  // namespace trainerd
