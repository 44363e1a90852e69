#include "spec/search_space.h"

#include <cmath>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace trainerd {
namespace {

using Type = SearchParameter::Type;

// A number as an override's value: the shortest text that reads back as the same double.
std::string Number(double value) {
  for (int digits = 6; digits <= 17; ++digits) {
    std::string text = absl::StrFormat("%.*g", digits, value);
    if (std::strtod(text.c_str(), nullptr) == value) return text;
  }
  return absl::StrFormat("%.17g", value);
}

std::string Override(const SearchParameter& p, const std::string& value) { return absl::StrCat(p.field, "=", value); }

// A uniform draw in [0, 1) from the engine's raw bits (std::uniform_real_distribution
// differs between standard libraries; mt19937_64's output does not).
double Unit(std::mt19937_64& engine) { return static_cast<double>(engine() >> 11) * 0x1.0p-53; }

// The values of a parameter on its grid, as override values.
std::vector<std::string> GridValues(const SearchParameter& p) {
  std::vector<std::string> out;
  if (p.type == Type::kCategorical) return p.values;
  if (p.type == Type::kLogUniform) {  // min, min * step, min * step^2, ...: 12 digits, no float noise
    for (int64_t k = 0;; ++k) {
      const double v = p.min * std::pow(p.step, static_cast<double>(k));
      if (v > p.max * (1 + 1e-9)) break;
      out.push_back(absl::StrFormat("%.12g", v));
    }
    return out;
  }
  const double step = p.type == Type::kInt && p.step == 0 ? 1 : p.step;
  for (int64_t k = 0;; ++k) {
    const double v = p.min + k * step;
    if (v > p.max + step * 1e-9) break;
    out.push_back(p.type == Type::kInt ? absl::StrCat(static_cast<int64_t>(std::llround(v))) : Number(v));
  }
  return out;
}

}  // namespace

absl::Status CheckSearchSpace(const std::vector<SearchParameter>& space) {
  std::vector<std::string> problems;
  std::set<std::string> seen;
  if (space.empty()) problems.push_back("search_space: give at least one field to vary");
  for (const SearchParameter& p : space) {
    const std::string at = absl::StrCat("search_space.", p.field);
    if (p.field.empty()) problems.push_back("search_space: a parameter without a field");
    if (!seen.insert(p.field).second) problems.push_back(absl::StrCat(at, ": given twice"));
    if (p.type == Type::kCategorical) {
      if (p.values.empty()) problems.push_back(absl::StrCat(at, ".values: give at least one"));
      continue;
    }
    if (!std::isfinite(p.min) || !std::isfinite(p.max))
      problems.push_back(absl::StrCat(at, ": min and max must be finite"));
    if (p.min > p.max) problems.push_back(absl::StrCat(at, ".min: ", Number(p.min), " is above max ", Number(p.max)));
    if (p.type == Type::kLogUniform && p.min <= 0) {
      problems.push_back(
          absl::StrCat(at, ".min: log_uniform needs a positive min (the log of ", Number(p.min), " does not exist)"));
    }
    if (p.step < 0 || !std::isfinite(p.step)) problems.push_back(absl::StrCat(at, ".step: must be positive"));
    if (p.type == Type::kInt && (p.min != std::floor(p.min) || p.max != std::floor(p.max))) {
      problems.push_back(absl::StrCat(at, ": int needs whole min and max"));
    }
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
}

std::vector<std::string> SampleTrial(const std::vector<SearchParameter>& space, uint64_t seed, int64_t trial) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(trial),
                    static_cast<uint32_t>(static_cast<uint64_t>(trial) >> 32)};
  std::mt19937_64 engine(seq);
  std::vector<std::string> out;
  for (const SearchParameter& p : space) {
    const double u = Unit(engine);
    switch (p.type) {
      case Type::kUniform:
        out.push_back(Override(p, Number(p.min + u * (p.max - p.min))));
        break;
      case Type::kLogUniform:
        out.push_back(Override(p, Number(std::exp(std::log(p.min) + u * (std::log(p.max) - std::log(p.min))))));
        break;
      case Type::kInt: {
        const int64_t lo = static_cast<int64_t>(p.min), hi = static_cast<int64_t>(p.max);
        out.push_back(Override(p, absl::StrCat(lo + static_cast<int64_t>(u * static_cast<double>(hi - lo + 1)))));
        break;
      }
      case Type::kCategorical:
        out.push_back(Override(p, p.values[static_cast<size_t>(u * p.values.size()) % p.values.size()]));
        break;
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<std::string>>> GridTrials(const std::vector<SearchParameter>& space,
                                                                 int64_t max_points) {
  std::vector<std::vector<std::string>> axes;
  int64_t points = 1;
  for (const SearchParameter& p : space) {
    if ((p.type == Type::kUniform || p.type == Type::kLogUniform) && p.step <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("search_space.", p.field, ".step: a grid needs a step for a continuous range"));
    }
    if (p.type == Type::kLogUniform && p.step <= 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("search_space.", p.field, ".step: log_uniform's is the factor between points, above 1"));
    }
    axes.push_back(GridValues(p));
    points *= static_cast<int64_t>(axes.back().size());
    if (points > max_points) {
      return absl::InvalidArgumentError(absl::StrCat("search_space: the grid has more than ", max_points, " points"));
    }
  }
  std::vector<std::vector<std::string>> trials(static_cast<size_t>(points));
  for (int64_t t = 0; t < points; ++t) {
    int64_t rest = t;
    std::vector<std::string>& trial = trials[t];
    trial.resize(space.size());
    for (size_t i = space.size(); i-- > 0;) {
      trial[i] = Override(space[i], axes[i][rest % axes[i].size()]);
      rest /= static_cast<int64_t>(axes[i].size());
    }
  }
  return trials;
}

}  // namespace trainerd
