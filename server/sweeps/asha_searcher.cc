#include "server/sweeps/asha_searcher.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace trainerd {
namespace {

// Whether objective `a` is better than `b` (NaN is worse than anything).
bool Better(double a, double b, bool maximize) {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return maximize ? a > b : a < b;
}

}  // namespace

absl::StatusOr<AshaSearcher> AshaSearcher::Create(const AshaConfig& config) {
  if (config.max_length < 1) return absl::InvalidArgumentError("searcher.max_length: must be >= 1");
  if (config.divisor < 2) return absl::InvalidArgumentError("searcher.divisor: must be >= 2");
  if (config.max_rungs < 1 || config.max_rungs > 20) {
    return absl::InvalidArgumentError("searcher.max_rungs: must be from 1 to 20");
  }
  std::vector<int64_t> lengths;
  for (int i = 0; i < config.max_rungs; ++i) {
    int64_t length = config.max_length;
    for (int k = 0; k < config.max_rungs - 1 - i && length > 0; ++k) length /= config.divisor;
    if (length >= 1 && (lengths.empty() || length > lengths.back())) lengths.push_back(length);
  }
  return AshaSearcher(config, std::move(lengths));
}

int AshaSearcher::RungAt(int64_t steps) const {
  int rung = -1;
  for (size_t i = 0; i < rung_lengths_.size() && rung_lengths_[i] <= steps; ++i) rung = static_cast<int>(i);
  return rung;
}

AshaDecision AshaSearcher::Report(const std::string& trial, int rung, double objective) {
  AshaDecision d;
  const int last = static_cast<int>(rung_lengths_.size()) - 1;
  d.rung = std::clamp(rung, 0, last);
  std::map<std::string, double>& at = results_[d.rung];
  const double mine = at.emplace(trial, objective).first->second;  // the first report's value
  d.reached = static_cast<int>(at.size());
  d.rank = 1;
  for (const auto& [other, value] : at) {
    if (other != trial && Better(value, mine, config_.maximize)) ++d.rank;
  }
  d.cut = std::max(d.reached / config_.divisor, 1);
  const std::string standing = absl::StrCat("rank ", d.rank, " of ", d.reached);
  if (d.rung == last) {
    d.outcome = AshaDecision::Outcome::kFinished;
    d.reason = absl::StrCat("finished at rung ", d.rung, " (", rung_lengths_[d.rung], " steps): ", standing);
  } else if (d.rank <= d.cut) {
    d.outcome = AshaDecision::Outcome::kContinue;
    d.reason = absl::StrCat("goes on from rung ", d.rung, ": ", standing, ", cut at ", d.cut);
  } else {
    d.outcome = AshaDecision::Outcome::kStop;
    d.reason = absl::StrCat("stopped at rung ", d.rung, ": ", standing, ", cut at ", d.cut);
  }
  return d;
}

}  // namespace trainerd
