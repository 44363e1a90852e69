// Reading job specs from YAML or JSON text.
//
// A spec file is YAML (JSON is a subset of it). The YAML tree is checked against the
// JobSpec message descriptor field by field, so that a typo (an unknown field) or a value
// of the wrong type is reported with its full path, e.g.
//   training_args.learning_rat: unknown field
//   training_args.max_steps: expected an integer, got "ten"
// and then mapped onto the proto through protobuf's JSON parser.
#ifndef TRAINERD_SPEC_SPEC_LOADER_H_
#define TRAINERD_SPEC_SPEC_LOADER_H_

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/v1/job_spec.pb.h"

namespace trainerd {

// Parses `text` (YAML or JSON) into a JobSpec. Each entry of `overrides` has the form
// "dotted.path=value" (value is read as YAML, so lists like "[64, 32]" work) and is
// applied before the conversion. Returns INVALID_ARGUMENT listing every problem found.
// Does not apply defaults or validate values; see spec_defaults.h and spec_validator.h.
// The document may not expand (YAML aliases) to more than kMaxSpecBytes; that is
// checked while it is expanded.
// HF TrainingArguments that change nothing here (report_to, push_to_hub, ...) are
// accepted, and HF's old names (evaluation_strategy) read as the new ones, each with a
// line in `warnings` (when given) instead of "unknown field". training_args.deepspeed
// must hold the config itself here (LoadJobSpecFile also reads a path).
absl::StatusOr<trainer::v1::JobSpec> ParseJobSpec(std::string_view text, const std::vector<std::string>& overrides = {},
                                                  std::vector<std::string>* warnings = nullptr);

// The text of the spec file at `path`: INVALID_ARGUMENT, naming the file and what is
// wrong, for a folder, a device or pipe, or a file over kMaxSpecBytes (never read past
// the bound); NOT_FOUND when there is no such file.
absl::StatusOr<std::string> ReadSpecFile(const std::string& path);

// Reads the file at `path` (ReadSpecFile) and parses it as ParseJobSpec does. Relative data and model
// paths inside the spec are resolved against the spec file's folder; a
// training_args.deepspeed that names a JSON file (relative: to that folder) is read into
// the spec.
absl::StatusOr<trainer::v1::JobSpec> LoadJobSpecFile(const std::string& path,
                                                     const std::vector<std::string>& overrides = {},
                                                     std::vector<std::string>* warnings = nullptr);

// ParseJobSpec for a spec read from a file in folder `base`: relative data and model
// paths are resolved against it, and a training_args.deepspeed path is read from it
// (LoadJobSpecFile, and a sweep file's inline job).
absl::StatusOr<trainer::v1::JobSpec> ParseJobSpecAt(std::string_view text, const std::filesystem::path& base,
                                                    const std::vector<std::string>& overrides = {},
                                                    std::vector<std::string>* warnings = nullptr);

// Renders a spec as YAML-compatible JSON (for logs and the saved training arguments).
std::string JobSpecToJson(const trainer::v1::JobSpec& spec);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_SPEC_LOADER_H_
