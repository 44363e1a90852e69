// A job's metrics as the history of its run stands: when an attempt resumes from a
// checkpoint at step S, the points earlier attempts logged after S are steps the run
// did again (or will do again), so the resumed attempt's points replace them.
#ifndef TRAINERD_SERVER_JOBS_METRIC_HISTORY_H_
#define TRAINERD_SERVER_JOBS_METRIC_HISTORY_H_

#include <vector>

#include "google/protobuf/repeated_field.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

// `points` in the order they were logged, each with its attempt number; `attempts` as
// the job records them (start_step once each attempt's training began). Keeps a point
// unless a later attempt began at a step before it. Points of attempt 0 (stored before
// attempts were recorded) count as the earliest.
std::vector<trainer::v1::MetricPoint> CurrentHistory(
    std::vector<trainer::v1::MetricPoint> points,
    const google::protobuf::RepeatedPtrField<trainer::v1::Attempt>& attempts);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_METRIC_HISTORY_H_
