// OptimizerCapabilities: what the trainer may ask of an optimizer beyond LibTorch's
// torch::optim::Optimizer. trainerd's own optimizers (GaLore) implement it; LibTorch's
// have none of these capabilities (OptimizerCapabilities::None()). The factory hands
// them out with the optimizer, so that the trainer never needs to know its type.
#ifndef TRAINERD_WORKER_OPTIM_OPTIMIZER_CAPABILITIES_H_
#define TRAINERD_WORKER_OPTIM_OPTIMIZER_CAPABILITIES_H_

#include <map>
#include <string>

namespace trainerd {

class OptimizerCapabilities {
 public:
  virtual ~OptimizerCapabilities() = default;

  // True when the optimizer updates each weight inside backward, as soon as its gradient
  // is ready (so gradients are never clipped, nor averaged across ranks, before a step).
  virtual bool StepsDuringBackward() const { return false; }
  // Makes backward step the weights (StepsDuringBackward only). Called once, on the
  // optimizer that trains (never on copies).
  virtual void AttachBackwardSteps() {}
  // A line about the optimizer's state for the log ("" when there is nothing to say),
  // and its figures added to `metrics` (e.g. train_galore_state_mb).
  virtual std::string DescribeState(std::map<std::string, double>* metrics) const {
    (void)metrics;
    return "";
  }

  // The capabilities of an optimizer that has none.
  static OptimizerCapabilities& None() {
    static OptimizerCapabilities none;
    return none;
  }
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_OPTIM_OPTIMIZER_CAPABILITIES_H_
