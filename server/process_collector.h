// ProcessCollector: the standard process_* series of Prometheus's client libraries
// (prometheus-cpp has none), read from /proc/self at each scrape: CPU seconds, resident
// and virtual memory, open and maximum file descriptors, threads and the start time.
#ifndef TRAINERD_SERVER_PROCESS_COLLECTOR_H_
#define TRAINERD_SERVER_PROCESS_COLLECTOR_H_

#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace trainerd {

class ProcessCollector : public prometheus::Collectable {
 public:
  // Series that cannot be read (no /proc) are left out rather than reported as 0.
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_PROCESS_COLLECTOR_H_
