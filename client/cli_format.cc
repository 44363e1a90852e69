#include "client/cli_format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace trainerd {

std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string Age(int64_t since, int64_t now) {
  const int64_t s = std::max<int64_t>(0, (now - since) / 1000);
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrCat(s / 60, "m");
  if (s < 86400) return absl::StrCat(s / 3600, "h");
  return absl::StrCat(s / 86400, "d");
}

std::string Rfc3339(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  return absl::FormatTime(absl::RFC3339_sec, absl::FromUnixMillis(unix_ms), absl::LocalTimeZone());
}

std::string Duration(int64_t ms) {
  const int64_t s = std::max<int64_t>(0, ms / 1000);
  if (s >= 3600) return absl::StrFormat("%dh%02dm%02ds", s / 3600, s / 60 % 60, s % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrCat(s, "s");
}

std::string OrDash(bool has, double value, const char* format) {
  if (!has) return "-";
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, value);
  return buf;
}

std::string ShortState(trainer::v1::JobState state) { return trainer::v1::JobState_Name(state); }

std::string StepProgress(const trainer::v1::Progress& p) {
  if (p.max_steps() <= 0) return "-";
  return absl::StrFormat("%d/%d (%d%%)", p.step(), p.max_steps(), 100 * p.step() / p.max_steps());
}

std::string HeadlineEval(const trainer::v1::Progress& p) {
  for (const char* key : {"eval_accuracy", "eval_f1", "eval_mse", "eval_loss"}) {
    auto it = p.eval_metrics().find(key);
    if (it != p.eval_metrics().end()) return absl::StrFormat("%s %.4f", key, it->second);
  }
  return "-";
}

std::string ProgressLine(const trainer::v1::Job& job, int width) {
  if (job.queue_position() > 0) {
    return absl::StrCat(ShortState(job.state()), " #", job.queue_position(), " in the queue: ", job.queue_reason());
  }
  const auto& p = job.progress();
  std::string bar;
  if (width > 0 && p.max_steps() > 0) {
    const int filled = static_cast<int>(width * std::min<double>(1.0, static_cast<double>(p.step()) / p.max_steps()));
    bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
  }
  std::string eta = "-";
  if (p.samples_per_second() > 0 && p.max_steps() > 0 && job.spec().training_args().per_device_train_batch_size() > 0) {
    const auto& a = job.spec().training_args();
    const double samples_left = static_cast<double>(p.max_steps() - p.step()) * a.per_device_train_batch_size() *
                                std::max<int64_t>(1, a.gradient_accumulation_steps());
    const int64_t seconds = static_cast<int64_t>(samples_left / p.samples_per_second());
    eta = absl::StrFormat("%d:%02d", seconds / 60, seconds % 60);
  }
  // The values come from the latest training record; the step moves on with heartbeats
  // in between, so values of an earlier step say which step they are from.
  const std::string logged =
      p.has_loss() && p.logged_step() != p.step() ? absl::StrCat("(at step ", p.logged_step(), ") ") : "";
  return absl::StrFormat("%s%s step %s  %sepoch %.2f  loss %s  lr %s  %s samples/s  ETA %s", bar,
                         ShortState(job.state()), StepProgress(p), logged, p.epoch(),
                         OrDash(p.has_loss(), p.loss(), "%.4f"), OrDash(p.has_learning_rate(), p.learning_rate(), "%.2e"),
                         OrDash(p.has_samples_per_second(), p.samples_per_second(), "%.0f"), eta);
}

namespace {

// The chart Plot and Scatter draw: a '*' for values[i] at column fraction columns[i] (0
// left, 1 right), the value axis labelled on the left (`general`: %g, else %f; `log`: the
// values are log10s, labelled with the numbers they stand for), and the line under it. A
// flat series (one point, or every value equal) is one row labelled with its value: an
// axis invented around it would show values that were never logged.
std::string Chart(const std::vector<double>& columns, const std::vector<double>& values, int width, int height,
                  bool general, bool log = false) {
  const auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  const double lo = *lo_it, hi = *hi_it;
  const int rows = hi == lo ? 1 : height;
  std::vector<std::string> grid(rows, std::string(width, ' '));
  for (size_t i = 0; i < values.size(); ++i) {
    const int x = static_cast<int>(std::lround(columns[i] * (width - 1)));
    const int y = rows == 1 ? 0 : static_cast<int>(std::lround((values[i] - lo) / (hi - lo) * (rows - 1)));
    grid[rows - 1 - y][x] = '*';
  }
  std::string out;
  for (int r = 0; r < rows; ++r) {
    double label = rows == 1 ? hi : hi - (hi - lo) * r / (rows - 1);
    if (log) label = std::pow(10.0, label);
    out += general ? absl::StrFormat("%10.4g |%s\n", label, grid[r]) : absl::StrFormat("%10.4f |%s\n", label, grid[r]);
  }
  out += absl::StrFormat("%10s +%s\n", "", std::string(width, '-'));
  return out;
}

}  // namespace

std::string Plot(const std::vector<double>& steps, const std::vector<double>& values, int width, int height) {
  if (values.empty()) return "(no points)\n";
  std::vector<double> columns;  // evenly spaced, in order
  for (size_t i = 0; i < values.size(); ++i) {
    columns.push_back(values.size() == 1 ? 0.0 : static_cast<double>(i) / static_cast<double>(values.size() - 1));
  }
  std::string out = Chart(columns, values, width, height, /*general=*/false);
  if (steps.size() == 1) {
    out += absl::StrFormat("%10s  step %.0f (one point)\n", "", steps.front());
  } else {
    out += absl::StrFormat("%10s  step %.0f .. %.0f\n", "", steps.front(), steps.back());
  }
  return out;
}

std::string Scatter(const std::vector<double>& xs, const std::vector<double>& ys, int width, int height, bool log_x) {
  std::vector<double> at;  // the x positions plotted
  std::vector<double> values;
  for (size_t i = 0; i < xs.size() && i < ys.size(); ++i) {
    if (log_x && xs[i] <= 0) continue;
    at.push_back(log_x ? std::log10(xs[i]) : xs[i]);
    values.push_back(ys[i]);
  }
  if (values.empty()) return "(no points)\n";
  const auto [x_lo, x_hi] = std::minmax_element(at.begin(), at.end());
  const double x0 = *x_lo, x1 = *x_hi;
  std::vector<double> columns;
  for (double x : at) columns.push_back(x1 == x0 ? 0.5 : (x - x0) / (x1 - x0));
  // Objectives spanning more than a hundredfold (a diverged trial among good ones) on a
  // log axis, so that one outlier does not flatten the rest into a row.
  const auto [y_lo, y_hi] = std::minmax_element(values.begin(), values.end());
  const bool log_y = *y_lo > 0 && *y_hi / *y_lo > 100;
  if (log_y) {
    for (double& v : values) v = std::log10(v);
  }
  std::string out = Chart(columns, values, width, height, /*general=*/true, log_y);
  const double lo = log_x ? std::pow(10.0, x0) : x0, hi = log_x ? std::pow(10.0, x1) : x1;
  out += absl::StrFormat("%10s  %.4g .. %.4g%s%s\n", "", lo, hi, log_x ? " (log scale)" : "",
                         log_y ? "; values on a log scale" : "");
  return out;
}

}  // namespace trainerd
