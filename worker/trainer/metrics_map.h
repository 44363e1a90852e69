#ifndef TRAINERD_WORKER_TRAINER_METRICS_MAP_H_
#define TRAINERD_WORKER_TRAINER_METRICS_MAP_H_

#include <map>
#include <string>

namespace trainerd {

// Named scalar values: one log record, or evaluation results. Ordered for stable output.
using Metrics = std::map<std::string, double>;

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TRAINER_METRICS_MAP_H_
