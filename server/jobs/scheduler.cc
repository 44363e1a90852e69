#include "server/jobs/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace trainerd {

std::vector<QueueSpot> PlanQueue(std::vector<QueuedJob> queue, FreeSlots free) {
  std::sort(queue.begin(), queue.end(), [](const QueuedJob& a, const QueuedJob& b) {
    if (a.priority != b.priority) return a.priority > b.priority;
    if (a.submitted_ms != b.submitted_ms) return a.submitted_ms < b.submitted_ms;
    return a.id < b.id;
  });
  std::vector<QueueSpot> spots;
  const QueuedJob* blocked = nullptr;  // the head that does not fit: nothing behind it starts
  for (const QueuedJob& job : queue) {
    QueueSpot spot{job.id, static_cast<int32_t>(spots.size()) + 1, ""};
    if (blocked != nullptr) {
      spot.reason = absl::StrCat("Priority: ", spot.position - 1, " job(s) ahead");
    } else if (job.cpu_slots > free.cpu_slots || job.gpus > free.gpus) {
      blocked = &job;
      spot.reason = absl::StrCat("Resources: needs ", job.cpu_slots, " CPU slot(s)",
                                 job.gpus > 0 ? absl::StrCat(" and ", job.gpus, " GPU(s)") : "", "; ",
                                 std::max(free.cpu_slots, 0), " slot(s)",
                                 job.gpus > 0 ? absl::StrCat(" and ", std::max(free.gpus, 0), " GPU(s)") : "",
                                 " free");
    } else {
      free.cpu_slots -= job.cpu_slots;
      free.gpus -= job.gpus;
    }
    spots.push_back(std::move(spot));
  }
  return spots;
}

std::vector<std::string> PickJobsToStart(std::vector<QueuedJob> queue, FreeSlots free) {
  std::vector<std::string> start;
  for (QueueSpot& spot : PlanQueue(std::move(queue), free)) {
    if (spot.reason.empty()) start.push_back(std::move(spot.id));
  }
  return start;
}

std::optional<std::vector<std::string>> PlaceRanks(int32_t ranks, int32_t gpus_per_rank,
                                                   std::vector<NodeSlots>* nodes) {
  auto capacity = [gpus_per_rank](const NodeSlots& n) {
    return gpus_per_rank > 0 ? std::min(n.cpu_slots, n.gpus / gpus_per_rank) : n.cpu_slots;
  };
  std::vector<size_t> order(nodes->size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  // The machine that takes the most ranks first; ties keep trainerd's own machine first.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return capacity((*nodes)[a]) > capacity((*nodes)[b]); });
  std::vector<std::string> placement;
  std::vector<int32_t> taken(nodes->size(), 0);
  for (size_t i : order) {
    const int32_t take = std::min(capacity((*nodes)[i]), ranks - static_cast<int32_t>(placement.size()));
    for (int32_t k = 0; k < take; ++k) placement.push_back((*nodes)[i].node);
    taken[i] = std::max(take, 0);
    if (static_cast<int32_t>(placement.size()) == ranks) break;
  }
  if (static_cast<int32_t>(placement.size()) < ranks) return std::nullopt;
  for (size_t i = 0; i < nodes->size(); ++i) {
    (*nodes)[i].cpu_slots -= taken[i];
    (*nodes)[i].gpus -= taken[i] * gpus_per_rank;
  }
  return placement;
}

}  // namespace trainerd
