#include "worker/trainer/lr_schedule.h"

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

using Factor = std::function<double(int64_t)>;

// What a lambda schedule's factor needs to know.
struct Shape {
  int64_t warmup = 0;
  int64_t total = 0;
  double learning_rate = 0;
};

double Progress(int64_t step, const Shape& s) {
  return static_cast<double>(step - s.warmup) / static_cast<double>(std::max<int64_t>(1, s.total - s.warmup));
}

Factor LinearFactor(const Shape& s) {
  return [=](int64_t step) {
    if (step < s.warmup) return Warmup(step, s.warmup);
    return std::max(0.0, static_cast<double>(s.total - step) /
                             static_cast<double>(std::max<int64_t>(1, s.total - s.warmup)));
  };
}

Factor CosineFactor(const Shape& s, double cycles, double min_rate) {
  return [=](int64_t step) {
    if (step < s.warmup) return Warmup(step, s.warmup);
    const double f = 0.5 * (1.0 + std::cos(kPi * cycles * 2.0 * Progress(step, s)));
    return std::max(0.0, f * (1.0 - min_rate) + min_rate);
  };
}

Factor CosineWithRestartsFactor(const Shape& s, double cycles) {
  return [=](int64_t step) {
    if (step < s.warmup) return Warmup(step, s.warmup);
    const double progress = Progress(step, s);
    if (progress >= 1.0) return 0.0;
    return std::max(0.0, 0.5 * (1.0 + std::cos(kPi * std::fmod(cycles * progress, 1.0))));
  };
}

absl::StatusOr<Factor> PolynomialFactor(const Shape& s, const Kwargs& kw) {
  const double lr_init = s.learning_rate;
  const double lr_end = kw.Number("lr_end", 1e-7);
  const double power = kw.Number("power", 1.0);
  if (!(lr_init > lr_end)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "training_args.lr_scheduler_kwargs.lr_end: must be smaller than learning_rate (", lr_init, ")"));
  }
  return Factor([=](int64_t step) {
    if (step < s.warmup) return Warmup(step, s.warmup);
    if (step > s.total) return lr_end / lr_init;
    const double remaining = 1.0 - static_cast<double>(step - s.warmup) / static_cast<double>(s.total - s.warmup);
    return ((lr_init - lr_end) * std::pow(remaining, power) + lr_end) / lr_init;
  });
}

Factor InverseSqrtFactor(const Shape& s, double timescale) {
  return [=](int64_t step) {
    if (step < s.warmup) return Warmup(step, s.warmup);
    const double shift = timescale - static_cast<double>(s.warmup);
    return 1.0 / std::sqrt((static_cast<double>(step) + shift) / timescale);
  };
}

absl::StatusOr<Factor> WarmupStableDecayFactor(const Shape& s, const Kwargs& kw) {
  const int64_t warmup = s.warmup;
  const int64_t decay = static_cast<int64_t>(kw.Number("num_decay_steps", 0));
  const int64_t stable = kw.Has("num_stable_steps") ? static_cast<int64_t>(kw.Number("num_stable_steps", 0))
                                                    : s.total - warmup - decay;
  const double min_ratio = kw.Number("min_lr_ratio", 0.0);
  const double cycles = kw.Number("num_cycles", 0.5);
  auto warm = Curve(kw.String("warmup_type", "linear"), /*decay=*/false, cycles);
  if (!warm.ok()) return warm.status();
  auto down = Curve(kw.String("decay_type", "cosine"), /*decay=*/true, cycles);
  if (!down.ok()) return down.status();
  return Factor([=, warm = *warm, down = *down](int64_t step) {
    if (step < warmup) return std::max(0.0, warm(Warmup(step, warmup)) * (1.0 - min_ratio) + min_ratio);
    if (step < warmup + stable) return 1.0;
    if (step < warmup + stable + decay) {
      const double p = static_cast<double>(step - warmup - stable) / static_cast<double>(std::max<int64_t>(1, decay));
      return std::max(0.0, down(p) * (1.0 - min_ratio) + min_ratio);
    }
    return min_ratio;
  });
}

// The factor of a lambda schedule `type`; NOT_FOUND when `type` is not one.
absl::StatusOr<Factor> LambdaFactor(const std::string& type, const Shape& s, const Kwargs& kw) {
  if (type == "linear") return LinearFactor(s);
  if (type == "cosine") return CosineFactor(s, kw.Number("num_cycles", 0.5), 0.0);
  if (type == "cosine_with_min_lr") {
    const double min_rate = kw.Has("min_lr") ? kw.Number("min_lr", 0) / s.learning_rate : kw.Number("min_lr_rate", 0);
    return CosineFactor(s, kw.Number("num_cycles", 0.5), min_rate);
  }
  if (type == "cosine_with_restarts") return CosineWithRestartsFactor(s, kw.Number("num_cycles", 1.0));
  if (type == "polynomial") return PolynomialFactor(s, kw);
  if (type == "constant") return Factor([](int64_t) { return 1.0; });
  if (type == "constant_with_warmup") {
    return Factor([=](int64_t step) { return step < s.warmup ? Warmup(step, s.warmup) : 1.0; });
  }
  if (type == "inverse_sqrt") return InverseSqrtFactor(s, kw.Number("timescale", s.warmup > 0 ? s.warmup : 10000));
  if (type == "warmup_stable_decay") return WarmupStableDecayFactor(s, kw);
  return absl::NotFoundError(type);
}

}  // namespace

absl::StatusOr<std::unique_ptr<LrSchedule>> LrSchedule::Create(const trainer::v1::TrainingArguments& args,
                                                               int64_t num_training_steps) {
  std::unique_ptr<LrSchedule> s(new LrSchedule());
  s->base_lr_ = args.learning_rate();
  s->num_warmup_steps_ = args.warmup_steps() > 0
                             ? args.warmup_steps()
                             : static_cast<int64_t>(std::ceil(num_training_steps * args.warmup_ratio()));
  const std::string& type = args.lr_scheduler_type();
  if (type == "reduce_lr_on_plateau") {
    if (absl::Status st = s->SetUpPlateau(args); !st.ok()) return st;
    return s;
  }
  const Shape shape{s->num_warmup_steps_, num_training_steps, args.learning_rate()};
  absl::StatusOr<Factor> factor = LambdaFactor(type, shape, Kwargs(args.lr_scheduler_kwargs()));
  if (absl::IsNotFound(factor.status())) {
    return absl::InvalidArgumentError(absl::StrCat("training_args.lr_scheduler_type: \"", type, "\" is not supported"));
  }
  if (!factor.ok()) return factor.status();
  s->factor_ = *std::move(factor);
  return s;
}

absl::Status LrSchedule::SetUpPlateau(const trainer::v1::TrainingArguments& args) {
  const Kwargs kw(args.lr_scheduler_kwargs());
  plateau_ = true;
  const std::string mode = kw.String("mode", "min");
  const std::string threshold_mode = kw.String("threshold_mode", "rel");
  if (mode != "min" && mode != "max") {
    return absl::InvalidArgumentError("training_args.lr_scheduler_kwargs.mode: must be \"min\" or \"max\"");
  }
  if (threshold_mode != "rel" && threshold_mode != "abs") {
    return absl::InvalidArgumentError("training_args.lr_scheduler_kwargs.threshold_mode: must be \"rel\" or \"abs\"");
  }
  mode_max_ = mode == "max";
  threshold_abs_ = threshold_mode == "abs";
  factor_on_plateau_ = kw.Number("factor", 0.1);
  if (!(factor_on_plateau_ < 1.0)) {
    return absl::InvalidArgumentError("training_args.lr_scheduler_kwargs.factor: must be < 1");
  }
  patience_ = static_cast<int64_t>(kw.Number("patience", 10));
  threshold_ = kw.Number("threshold", 1e-4);
  cooldown_ = static_cast<int64_t>(kw.Number("cooldown", 0));
  min_lr_ = kw.Number("min_lr", 0);
  eps_ = kw.Number("eps", 1e-8);
  state_.lr = args.learning_rate();
  state_.best = mode_max_ ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  return absl::OkStatus();
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

void LrSchedule::SaveState(CheckpointContents& out) {
  out.Json("scheduler.json") = {{"lr", state_.lr}, {"best", state_.best}, {"num_bad_epochs", state_.num_bad_epochs},
                                {"cooldown_counter", state_.cooldown_counter}, {"last_epoch", state_.last_epoch}};
}

void LrSchedule::LoadState(const CheckpointContents& in) {
  const nlohmann::json& j = in.NeedJson("scheduler.json");
  state_ = {j.at("lr").get<double>(), j.at("best").get<double>(), j.at("num_bad_epochs").get<int64_t>(),
            j.at("cooldown_counter").get<int64_t>(), j.at("last_epoch").get<int64_t>()};
}

}  // namespace trainerd
