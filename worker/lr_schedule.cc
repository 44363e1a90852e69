#include "worker/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace trainerd {
namespace {

constexpr double kPi = 3.14159265358979323846;

class Kwargs {
 public:
  explicit Kwargs(const google::protobuf::Struct& s) : s_(s) {}
  bool Has(const std::string& k) const { return s_.fields().count(k) > 0; }
  double Number(const std::string& k, double fallback) const {
    auto it = s_.fields().find(k);
    return it == s_.fields().end() ? fallback : it->second.number_value();
  }
  std::string String(const std::string& k, const std::string& fallback) const {
    auto it = s_.fields().find(k);
    return it == s_.fields().end() ? fallback : it->second.string_value();
  }

 private:
  const google::protobuf::Struct& s_;
};

double Warmup(int64_t step, int64_t warmup) {
  return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
}

// Shape of a warmup or decay curve in warmup_stable_decay.
absl::StatusOr<std::function<double(double)>> Curve(const std::string& kind, bool decay,
                                                     double num_cycles) {
  if (kind == "linear") {
    return std::function<double(double)>([decay](double p) { return decay ? 1.0 - p : p; });
  }
  if (kind == "cosine") {
    return std::function<double(double)>([decay, num_cycles](double p) {
      return decay ? 0.5 * (1.0 + std::cos(kPi * num_cycles * 2.0 * p))
                   : 0.5 * (1.0 - std::cos(kPi * p));
    });
  }
  if (kind == "1-sqrt") {
    return std::function<double(double)>(
        [decay](double p) { return decay ? 1.0 - std::sqrt(p) : 1.0 - std::sqrt(1.0 - p); });
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "training_args.lr_scheduler_kwargs.", decay ? "decay_type" : "warmup_type", ": \"", kind,
      "\" is not supported; must be one of linear, cosine, 1-sqrt"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<LrSchedule>> LrSchedule::Create(
    const trainer::v1::TrainingArguments& args, int64_t num_training_steps) {
  std::unique_ptr<LrSchedule> s(new LrSchedule());
  s->base_lr_ = args.learning_rate();
  const int64_t warmup =
      args.warmup_steps() > 0
          ? args.warmup_steps()
          : static_cast<int64_t>(std::ceil(num_training_steps * args.warmup_ratio()));
  s->num_warmup_steps_ = warmup;
  const int64_t total = num_training_steps;
  const Kwargs kw(args.lr_scheduler_kwargs());
  const std::string& type = args.lr_scheduler_type();

  if (type == "linear") {
    s->factor_ = [=](int64_t step) {
      if (step < warmup) return Warmup(step, warmup);
      return std::max(0.0, static_cast<double>(total - step) /
                               static_cast<double>(std::max<int64_t>(1, total - warmup)));
    };
  } else if (type == "cosine" || type == "cosine_with_min_lr") {
    const double cycles = kw.Number("num_cycles", 0.5);
    double min_rate = 0.0;
    if (type == "cosine_with_min_lr") {
      min_rate = kw.Has("min_lr") ? kw.Number("min_lr", 0) / args.learning_rate()
                                  : kw.Number("min_lr_rate", 0);
    }
    s->factor_ = [=](int64_t step) {
      if (step < warmup) return Warmup(step, warmup);
      const double progress = static_cast<double>(step - warmup) /
                              static_cast<double>(std::max<int64_t>(1, total - warmup));
      double f = 0.5 * (1.0 + std::cos(kPi * cycles * 2.0 * progress));
      f = f * (1.0 - min_rate) + min_rate;
      return std::max(0.0, f);
    };
  } else if (type == "cosine_with_restarts") {
    const double cycles = kw.Number("num_cycles", 1.0);
    s->factor_ = [=](int64_t step) {
      if (step < warmup) return Warmup(step, warmup);
      const double progress = static_cast<double>(step - warmup) /
                              static_cast<double>(std::max<int64_t>(1, total - warmup));
      if (progress >= 1.0) return 0.0;
      return std::max(0.0, 0.5 * (1.0 + std::cos(kPi * std::fmod(cycles * progress, 1.0))));
    };
  } else if (type == "polynomial") {
    const double lr_init = args.learning_rate();
    const double lr_end = kw.Number("lr_end", 1e-7);
    const double power = kw.Number("power", 1.0);
    if (!(lr_init > lr_end)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "training_args.lr_scheduler_kwargs.lr_end: must be smaller than learning_rate (",
          lr_init, ")"));
    }
    s->factor_ = [=](int64_t step) {
      if (step < warmup) return Warmup(step, warmup);
      if (step > total) return lr_end / lr_init;
      const double decay_steps = static_cast<double>(total - warmup);
      const double remaining = 1.0 - static_cast<double>(step - warmup) / decay_steps;
      return ((lr_init - lr_end) * std::pow(remaining, power) + lr_end) / lr_init;
    };
  } else if (type == "constant") {
    s->factor_ = [](int64_t) { return 1.0; };
  } else if (type == "constant_with_warmup") {
    s->factor_ = [=](int64_t step) { return step < warmup ? Warmup(step, warmup) : 1.0; };
  } else if (type == "inverse_sqrt") {
    const double timescale = kw.Number("timescale", warmup > 0 ? warmup : 10000);
    s->factor_ = [=](int64_t step) {
      if (step < warmup) return Warmup(step, warmup);
      const double shift = timescale - static_cast<double>(warmup);
      return 1.0 / std::sqrt((static_cast<double>(step) + shift) / timescale);
    };
  } else if (type == "warmup_stable_decay") {
    const int64_t decay = static_cast<int64_t>(kw.Number("num_decay_steps", 0));
    const int64_t stable = kw.Has("num_stable_steps")
                               ? static_cast<int64_t>(kw.Number("num_stable_steps", 0))
                               : total - warmup - decay;
    const double min_ratio = kw.Number("min_lr_ratio", 0.0);
    const double cycles = kw.Number("num_cycles", 0.5);
    auto warm = Curve(kw.String("warmup_type", "linear"), /*decay=*/false, cycles);
    if (!warm.ok()) return warm.status();
    auto down = Curve(kw.String("decay_type", "cosine"), /*decay=*/true, cycles);
    if (!down.ok()) return down.status();
    s->factor_ = [=, warm = *warm, down = *down](int64_t step) {
      if (step < warmup) {
        const double f = warm(Warmup(step, warmup)) * (1.0 - min_ratio) + min_ratio;
        return std::max(0.0, f);
      }
      if (step < warmup + stable) return 1.0;
      if (step < warmup + stable + decay) {
        const double p = static_cast<double>(step - warmup - stable) /
                         static_cast<double>(std::max<int64_t>(1, decay));
        return std::max(0.0, down(p) * (1.0 - min_ratio) + min_ratio);
      }
      return min_ratio;
    };
  } else if (type == "reduce_lr_on_plateau") {
    s->plateau_ = true;
    const std::string mode = kw.String("mode", "min");
    const std::string threshold_mode = kw.String("threshold_mode", "rel");
    if (mode != "min" && mode != "max") {
      return absl::InvalidArgumentError(
          "training_args.lr_scheduler_kwargs.mode: must be \"min\" or \"max\"");
    }
    if (threshold_mode != "rel" && threshold_mode != "abs") {
      return absl::InvalidArgumentError(
          "training_args.lr_scheduler_kwargs.threshold_mode: must be \"rel\" or \"abs\"");
    }
    s->mode_max_ = mode == "max";
    s->threshold_abs_ = threshold_mode == "abs";
    s->factor_on_plateau_ = kw.Number("factor", 0.1);
    if (!(s->factor_on_plateau_ < 1.0)) {
      return absl::InvalidArgumentError("training_args.lr_scheduler_kwargs.factor: must be < 1");
    }
    s->patience_ = static_cast<int64_t>(kw.Number("patience", 10));
    s->threshold_ = kw.Number("threshold", 1e-4);
    s->cooldown_ = static_cast<int64_t>(kw.Number("cooldown", 0));
    s->min_lr_ = kw.Number("min_lr", 0);
    s->eps_ = kw.Number("eps", 1e-8);
    s->state_.lr = args.learning_rate();
    s->state_.best = s->mode_max_ ? -std::numeric_limits<double>::infinity()
                                  : std::numeric_limits<double>::infinity();
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "training_args.lr_scheduler_type: \"", type, "\" is not supported"));
  }
  return s;
}

double LrSchedule::LearningRate(int64_t step) const {
  if (plateau_) return state_.lr;
  return base_lr_ * factor_(step);
}

bool LrSchedule::IsBetter(double a) const {
  const double best = state_.best;
  if (!mode_max_) return threshold_abs_ ? a < best - threshold_ : a < best * (1.0 - threshold_);
  return threshold_abs_ ? a > best + threshold_ : a > best * (threshold_ + 1.0);
}

void LrSchedule::OnEvaluate(double metric) {
  if (!plateau_) return;
  state_.last_epoch += 1;
  if (IsBetter(metric)) {
    state_.best = metric;
    state_.num_bad_epochs = 0;
  } else {
    state_.num_bad_epochs += 1;
  }
  if (state_.cooldown_counter > 0) {
    state_.cooldown_counter -= 1;
    state_.num_bad_epochs = 0;
  }
  if (state_.num_bad_epochs > patience_) {
    const double new_lr = std::max(state_.lr * factor_on_plateau_, min_lr_);
    if (state_.lr - new_lr > eps_) state_.lr = new_lr;
    state_.cooldown_counter = cooldown_;
    state_.num_bad_epochs = 0;
  }
}

}  // namespace trainerd
