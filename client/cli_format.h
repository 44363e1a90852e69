// How trainer-cli shows things: tables and lines for people, JSON for scripts.
#ifndef TRAINERD_CLIENT_CLI_FORMAT_H_
#define TRAINERD_CLIENT_CLI_FORMAT_H_

#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "proto/json_mapping.h"  // ToJson: the stable --json format
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

// Aligned columns; the first row is the header.
std::string Table(const std::vector<std::vector<std::string>>& rows);

std::string Age(int64_t since_unix_ms, int64_t now_ms);
// RFC 3339 in the local time zone, to the second ("2026-12-04T05:12:09+00:00"); "-" for 0.
std::string Rfc3339(int64_t unix_ms);
// "1h02m03s", "4m05s", "12s".
std::string Duration(int64_t ms);
// `value` in `format`, or "-" when unset (a proto3 optional field before its first value).
std::string OrDash(bool has, double value, const char* format);
std::string ShortState(trainer::v1::JobState state);
// "120/844 (14%)" or "-".
std::string StepProgress(const trainer::v1::Progress& p);
// The job's headline evaluation metric ("eval_accuracy 0.8874"), or "-".
std::string HeadlineEval(const trainer::v1::Progress& p);

// One progress line: step/total, epoch, loss, lr, samples/s, ETA; `width` > 0 adds a bar.
std::string ProgressLine(const trainer::v1::Job& job, int width);

// A terminal chart of `values` (height rows, width columns).
std::string Plot(const std::vector<double>& steps, const std::vector<double>& values, int width, int height);

// A terminal scatter plot of (xs[i], ys[i]), each point at its own x (on a log scale
// when `log_x`), with the x range below it; values spanning more than a hundredfold are
// drawn on a log scale.
std::string Scatter(const std::vector<double>& xs, const std::vector<double>& ys, int width, int height, bool log_x);

}  // namespace trainerd

#endif  // TRAINERD_CLIENT_CLI_FORMAT_H_
