#include "server/jobs/scheduler.h"

#include <algorithm>

namespace trainerd {

std::vector<std::string> PickJobsToStart(std::vector<QueuedJob> queue, FreeSlots free) {
  std::sort(queue.begin(), queue.end(), [](const QueuedJob& a, const QueuedJob& b) {
    if (a.priority != b.priority) return a.priority > b.priority;
    if (a.submitted_ms != b.submitted_ms) return a.submitted_ms < b.submitted_ms;
    return a.id < b.id;
  });
  std::vector<std::string> start;
  for (const QueuedJob& job : queue) {
    if (job.cpu_slots > free.cpu_slots || job.gpus > free.gpus) break;  // reserve for the head
    free.cpu_slots -= job.cpu_slots;
    free.gpus -= job.gpus;
    start.push_back(job.id);
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
