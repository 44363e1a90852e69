#include "worker/optim/optimizer_factory.h"

#include <set>

#include <torch/optim.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "spec/spec_defaults.h"
#include "spec/target_modules.h"
#include "worker/optim/adafactor.h"
#include "worker/optim/galore.h"

namespace trainerd {
namespace {

using torch::optim::OptimizerParamGroup;

double Arg(const std::map<std::string, double>& args, const std::string& key, double fallback) {
  auto it = args.find(key);
  return it == args.end() ? fallback : it->second;
}

// Two groups: with and without weight decay. `make` builds the options of a group.
template <typename Options, typename Make>
std::vector<OptimizerParamGroup> Groups(const NamedTensors& params, Make make) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& [name, p] : params) {
    if (!p.requires_grad()) continue;
    (UsesWeightDecay(name, p) ? decay : no_decay).push_back(p);
  }
  std::vector<OptimizerParamGroup> groups;
  if (!decay.empty()) groups.emplace_back(decay, std::make_unique<Options>(make(true)));
  if (!no_decay.empty()) groups.emplace_back(no_decay, std::make_unique<Options>(make(false)));
  return groups;
}

// GaLore: targeted weights in a projected group, the rest as the plain optimizer groups.
absl::StatusOr<std::unique_ptr<GaLore>> CreateGaLore(const trainer::v1::TrainingArguments& a,
                                                                      const std::map<std::string, double>& x,
                                                                      const NamedTensors& named_parameters) {
  GaLoreOptions base(a.learning_rate());
  base.beta1(a.adam_beta1()).beta2(a.adam_beta2()).eps(a.adam_epsilon());
  const TargetModules target_modules({a.optim_target_modules().begin(), a.optim_target_modules().end()});
  NamedTensors targets, others;
  for (const auto& [name, p] : named_parameters) {
    if (!p.requires_grad()) continue;
    (p.dim() == 2 && target_modules.Matches(name) ? targets : others).emplace_back(name, p);
  }
  if (targets.empty()) {
    return absl::InvalidArgumentError(
        "training_args.optim_target_modules: matched none of the model's 2-D weights (names such as "
        "\"blocks.0.qkv.weight\"; entries match as substrings or regexes)");
  }
  std::vector<OptimizerParamGroup> groups = Groups<GaLoreOptions>(others, [&](bool decay) {
    return GaLoreOptions(base).weight_decay(decay ? a.weight_decay() : 0.0);
  });
  std::vector<torch::Tensor> projected;
  for (const auto& [name, p] : targets) projected.push_back(p);
  // HF's defaults: rank 128, a new basis every 200 steps, scale 0.25.
  groups.emplace_back(projected, std::make_unique<GaLoreOptions>(
                                     GaLoreOptions(base)
                                         .weight_decay(a.weight_decay())
                                         .rank(static_cast<int64_t>(Arg(x, "rank", 128)))
                                         .update_proj_gap(static_cast<int64_t>(Arg(x, "update_proj_gap", 200)))
                                         .scale(Arg(x, "scale", 0.25))));
  const GaLoreInner inner = a.optim() == "galore_adafactor" ? GaLoreInner::kAdafactor : GaLoreInner::kAdamW;
  return std::make_unique<GaLore>(std::move(groups), base, inner, a.optim() == "galore_adamw_layerwise");
}

std::unique_ptr<torch::optim::Optimizer> BuildAdamW(const trainer::v1::TrainingArguments& a,
    const std::map<std::string, double>& x, const NamedTensors& named_parameters) {
  const double lr = a.learning_rate();
  const double wd = a.weight_decay();
  using O = torch::optim::AdamWOptions;
  auto groups = Groups<O>(named_parameters, [&](bool decay) {
    return O(lr)
        .betas({a.adam_beta1(), a.adam_beta2()})
        .eps(a.adam_epsilon())
        .weight_decay(decay ? wd : 0.0)
        .amsgrad(Arg(x, "amsgrad", 0) != 0);
  });
  return std::make_unique<torch::optim::AdamW>(groups, O(lr));
}

std::unique_ptr<torch::optim::Optimizer> BuildSgd(const trainer::v1::TrainingArguments& a,
    const std::map<std::string, double>& x, const NamedTensors& named_parameters) {
  const double lr = a.learning_rate();
  const double wd = a.weight_decay();
  using O = torch::optim::SGDOptions;
  auto groups = Groups<O>(named_parameters, [&](bool decay) {
    return O(lr)
        .momentum(Arg(x, "momentum", 0))
        .dampening(Arg(x, "dampening", 0))
        .nesterov(Arg(x, "nesterov", 0) != 0)
        .weight_decay(decay ? wd : 0.0);
  });
  return std::make_unique<torch::optim::SGD>(groups, O(lr));
}

std::unique_ptr<torch::optim::Optimizer> BuildAdagrad(const trainer::v1::TrainingArguments& a,
    const std::map<std::string, double>& x, const NamedTensors& named_parameters) {
  const double lr = a.learning_rate();
  const double wd = a.weight_decay();
  using O = torch::optim::AdagradOptions;
  auto groups = Groups<O>(named_parameters, [&](bool decay) {
    return O(lr)
        .lr_decay(Arg(x, "lr_decay", 0))
        .initial_accumulator_value(Arg(x, "initial_accumulator_value", 0))
        .eps(Arg(x, "eps", 1e-10))
        .weight_decay(decay ? wd : 0.0);
  });
  return std::make_unique<torch::optim::Adagrad>(groups, O(lr));
}

std::unique_ptr<torch::optim::Optimizer> BuildRmsProp(const trainer::v1::TrainingArguments& a,
    const std::map<std::string, double>& x, const NamedTensors& named_parameters) {
  const double lr = a.learning_rate();
  const double wd = a.weight_decay();
  using O = torch::optim::RMSpropOptions;
  auto groups = Groups<O>(named_parameters, [&](bool decay) {
    return O(lr)
        .alpha(Arg(x, "alpha", 0.99))
        .eps(Arg(x, "eps", 1e-8))
        .momentum(Arg(x, "momentum", 0))
        .centered(Arg(x, "centered", 0) != 0)
        .weight_decay(decay ? wd : 0.0);
  });
  return std::make_unique<torch::optim::RMSprop>(groups, O(lr));
}

std::unique_ptr<torch::optim::Optimizer> BuildAdafactor(const trainer::v1::TrainingArguments& a,
    const std::map<std::string, double>& x, const NamedTensors& named_parameters) {
  const double lr = a.learning_rate();
  const double wd = a.weight_decay();
  using O = AdafactorOptions;
  auto groups = Groups<O>(named_parameters, [&](bool decay) {
    return O(lr)
        .eps1(Arg(x, "eps1", 1e-30))
        .eps2(Arg(x, "eps2", 1e-3))
        .clip_threshold(Arg(x, "clip_threshold", 1.0))
        .decay_rate(Arg(x, "decay_rate", -0.8))
        .beta1(Arg(x, "beta1", 0.0))
        .scale_parameter(Arg(x, "scale_parameter", 0) != 0)
        .relative_step(Arg(x, "relative_step", 0) != 0)
        .warmup_init(Arg(x, "warmup_init", 0) != 0)
        .weight_decay(decay ? wd : 0.0);
  });
  return std::make_unique<Adafactor>(groups, O(lr));
}

using Builder = std::unique_ptr<torch::optim::Optimizer> (*)(const trainer::v1::TrainingArguments&,
                                                            const std::map<std::string, double>&, const NamedTensors&);

const std::map<std::string, Builder>& Builders() {
  static const auto* builders = new std::map<std::string, Builder>{
      {"adamw_torch", &BuildAdamW}, {"sgd", &BuildSgd},           {"adagrad", &BuildAdagrad},
      {"rmsprop", &BuildRmsProp},   {"adafactor", &BuildAdafactor},
  };
  return *builders;
}

const std::set<std::string>& GaLoreNames() {
  static const auto* names = new std::set<std::string>{"galore_adamw", "galore_adamw_layerwise", "galore_adafactor"};
  return *names;
}

}  // namespace

std::set<std::string> OptimizerNames() {
  std::set<std::string> names = GaLoreNames();
  for (const auto& [name, builder] : Builders()) names.insert(name);
  return names;
}

bool UsesWeightDecay(const std::string& name, const torch::Tensor& param) {
  return param.dim() >= 2 && !absl::EndsWith(name, "bias");
}

absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> CreateOptimizer(
    const trainer::v1::TrainingArguments& a, const NamedTensors& named_parameters,
    OptimizerCapabilities** capabilities) {
  if (capabilities != nullptr) *capabilities = &OptimizerCapabilities::None();
  auto parsed = ParseOptimArgs(a.optim_args());
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("training_args.optim_args: ", parsed.status().message()));
  }
  const std::string& name = a.optim();
  if (auto it = Builders().find(name); it != Builders().end()) return it->second(a, *parsed, named_parameters);
  if (GaLoreNames().count(name)) {
    absl::StatusOr<std::unique_ptr<GaLore>> galore = CreateGaLore(a, *parsed, named_parameters);
    if (!galore.ok()) return galore.status();
    if (capabilities != nullptr) *capabilities = galore->get();
    return std::unique_ptr<torch::optim::Optimizer>(std::move(*galore));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("training_args.optim: \"", name, "\" is not supported"));
}

void SetLearningRate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace trainerd
