#include "client/submit_request.h"

#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"

namespace trainerd {

absl::StatusOr<trainer::v1::SubmitJobRequest> BuildSubmitRequest(const CliArgs& args, bool validate_only) {
  std::vector<std::string> warnings;
  auto spec = LoadJobSpecFile(args.spec_path, args.sets, &warnings);
  if (!spec.ok()) return spec.status();
  for (const std::string& w : warnings) std::cerr << args.spec_path << ": " << w << "\n";
  trainer::v1::SubmitJobRequest req;
  *req.mutable_spec() = *std::move(spec);
  req.set_name(args.name);
  req.set_priority(args.priority);
  if (args.max_restarts >= 0) req.set_max_restarts(args.max_restarts);
  absl::StatusOr<trainer::v1::Resources> resources = ResourcesFromArgs(args);
  if (!resources.ok()) return resources.status();
  *req.mutable_resources() = std::move(*resources);
  req.set_validate_only(validate_only);
  return req;
}

absl::StatusOr<trainer::v1::Resources> ResourcesFromArgs(const CliArgs& args) {
  trainer::v1::Resources resources;
  resources.set_ranks(args.ranks);
  resources.set_gpus_per_rank(args.gpus_per_rank);
  if (!args.time_limit.empty()) {
    absl::Duration limit;
    if (!absl::ParseDuration(args.time_limit, &limit) || limit < absl::Seconds(1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--time-limit: '", args.time_limit, "' is not a duration such as 90m, 2h30m or 600s"));
    }
    resources.set_time_limit_s(absl::ToInt64Seconds(limit));
  }
  return resources;
}

absl::Status CheckLocally(const trainer::v1::SubmitJobRequest& request) {
  trainer::v1::JobSpec checked = request.spec();
  ApplyDefaults(&checked);
  SpecCheckOptions options;
  options.gpus_per_rank = request.resources().gpus_per_rank();
  return ValidateJobSpec(checked, options);
}

}  // namespace trainerd
