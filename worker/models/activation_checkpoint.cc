#include "worker/models/activation_checkpoint.h"

#include <mutex>
#include <utility>

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace trainerd {
namespace {

torch::Tensor GetState(at::Generator& generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void SetState(at::Generator& generator, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

// The autocast settings (bf16, fp16) of the thread: backward runs outside the trainer's
// autocast scope, and the replay must compute in the precision the first run did.
struct AutocastState {
  static AutocastState Current() {
    return {at::autocast::is_cpu_enabled(), at::autocast::get_autocast_cpu_dtype(), at::autocast::is_enabled(),
            at::autocast::get_autocast_gpu_dtype()};
  }
  void Apply() const {
    at::autocast::set_cpu_enabled(cpu);
    at::autocast::set_autocast_cpu_dtype(cpu_dtype);
    at::autocast::set_enabled(gpu);
    at::autocast::set_autocast_gpu_dtype(gpu_dtype);
  }
  bool cpu;
  at::ScalarType cpu_dtype;
  bool gpu;
  at::ScalarType gpu_dtype;
};

// What backward needs besides the saved input: the block, the random state (of the
// input's device: dropout on a GPU draws from that GPU's generator) and autocast's.
struct Replay : torch::CustomClassHolder {
  Replay(BlockFunction block, at::Generator generator, torch::Tensor rng_state, AutocastState autocast)
      : block(std::move(block)), generator(std::move(generator)), rng_state(std::move(rng_state)),
        autocast(autocast) {}
  BlockFunction block;
  at::Generator generator;
  torch::Tensor rng_state;
  AutocastState autocast;
};

// The replay's surroundings for its scope: the first run's random and autocast state,
// and the present ones back afterwards (also when the replay throws).
class ReplayScope {
 public:
  explicit ReplayScope(Replay& replay)
      : replay_(replay), rng_now_(GetState(replay.generator)), autocast_now_(AutocastState::Current()) {
    SetState(replay_.generator, replay_.rng_state);
    replay_.autocast.Apply();
  }
  ~ReplayScope() {
    SetState(replay_.generator, rng_now_);
    autocast_now_.Apply();
    if (!autocast_now_.cpu && !autocast_now_.gpu) at::autocast::clear_cache();
  }

 private:
  Replay& replay_;
  torch::Tensor rng_now_;
  AutocastState autocast_now_;
};

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const BlockFunction& block) {
    at::Generator generator = at::globalContext().defaultGenerator(x.device());
    ctx->saved_data["replay"] =
        c10::IValue::make_capsule(c10::make_intrusive<Replay>(block, generator, GetState(generator),
                                                              AutocastState::Current()));
    ctx->save_for_backward({x});
    return block(x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto replay = c10::static_intrusive_pointer_cast<Replay>(ctx->saved_data["replay"].toCapsule());
    torch::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    torch::Tensor y;
    {
      ReplayScope scope(*replay);
      torch::AutoGradMode enable(true);
      y = replay->block(x);
    }
    torch::autograd::backward({y}, {grad_outputs[0]});
    return {x.grad(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor MaybeCheckpoint(bool enabled, const BlockFunction& block, const torch::Tensor& x) {
  if (!enabled || !torch::GradMode::is_enabled()) return block(x);
  // A function's output needs a gradient only when an input does: with a frozen
  // embedding (LoRA) the block's input needs none, and the adapters inside would get no
  // gradient. As HF's enable_input_require_grads, the input is made to need one.
  if (!x.requires_grad()) return CheckpointFunction::apply(x.detach().requires_grad_(true), block);
  return CheckpointFunction::apply(x, block);
}

}  // namespace trainerd
