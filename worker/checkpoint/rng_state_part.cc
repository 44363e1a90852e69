#include "worker/checkpoint/rng_state_part.h"

#include <mutex>
#include <string>
#include <vector>

#include <torch/csrc/jit/serialization/pickle.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "worker/checkpoint/checkpointer.h"
#include "worker/distributed/distributed.h"

namespace trainerd {
namespace {

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

void RngStatePart::SaveState(CheckpointContents& out) {
  if (distributed_ == nullptr || distributed_->world_size() == 1) return out.Put("rng_state.pth", RngStateBytes());
  std::vector<std::string> states = distributed_->AllGatherBytes(RngStateBytes());
  for (size_t r = 0; r < states.size(); ++r) out.Put(absl::StrCat("rng_state_", r, ".pth"), states[r]);
}

void RngStatePart::LoadState(const CheckpointContents& in) {
  const int world = distributed_ == nullptr ? 1 : distributed_->world_size();
  const int rank = distributed_ == nullptr ? 0 : distributed_->rank();
  const std::string mine = world > 1 ? absl::StrCat("rng_state_", rank, ".pth") : "rng_state.pth";
  const int64_t saved_world = in.NeedJson(kTrainingStateFile).value("world_size", int64_t{1});
  if (saved_world == world) return LoadRngState(in.Need(mine));
  // Another number of ranks saved it: rank r takes saved rank r's state.
  const std::string saved = saved_world > 1 ? absl::StrCat("rng_state_", rank, ".pth") : "rng_state.pth";
  if (rank < saved_world && in.Has(saved)) return LoadRngState(in.Need(saved));
  spdlog::warn("{} holds no random state for rank {} (it was saved by {} rank(s)): this rank keeps its seeded one",
               in.dir(), rank, saved_world);
}

}  // namespace trainerd
