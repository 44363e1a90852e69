#include "server/jobs/metric_history.h"

#include <algorithm>
#include <cstdint>
#include <limits>

namespace trainerd {

std::vector<trainer::v1::MetricPoint> CurrentHistory(
    std::vector<trainer::v1::MetricPoint> points,
    const google::protobuf::RepeatedPtrField<trainer::v1::Attempt>& attempts) {
  // For each attempt number, the lowest step a later attempt began at: its points past
  // that step were superseded. An attempt whose training has not begun yet says nothing.
  const int32_t last = attempts.empty() ? 0 : std::max(0, attempts.rbegin()->number());
  std::vector<int64_t> superseded_after(static_cast<size_t>(last) + 1, std::numeric_limits<int64_t>::max());
  int64_t lowest_later_start = std::numeric_limits<int64_t>::max();
  for (auto it = attempts.rbegin(); it != attempts.rend(); ++it) {
    if (it->number() >= 0 && it->number() <= last) superseded_after[it->number()] = lowest_later_start;
    if (it->has_start_step()) lowest_later_start = std::min(lowest_later_start, it->start_step());
  }
  superseded_after[0] = lowest_later_start;
  points.erase(std::remove_if(points.begin(), points.end(),
                              [&](const trainer::v1::MetricPoint& p) {
                                const int32_t n = p.attempt();
                                if (n < 0 || n > last) return false;
                                return p.step() > superseded_after[n];
                              }),
               points.end());
  return points;
}

}  // namespace trainerd
