#include "server/jobs/job_admission.h"

#include <sys/stat.h>

#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/atomic_file.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"
#include "spec/user_files.h"
#include "protocol/job_layout.h"
#include "server/jobs/job_registry.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using trainer::v1::Job;

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr size_t kJobIdDigits = 11;

// A custom worker program must resolve (symlinks followed) into an allowed folder.
// Returns its resolved path and "device:inode"; a program outside the folders gets the
// same answer whether or not it exists.
absl::StatusOr<std::pair<std::string, std::string>> ResolveWorkerProgram(const std::string& program,
                                                                         const std::vector<std::string>& allowed) {
  std::error_code ec;
  const fs::path real = fs::weakly_canonical(program, ec);
  for (const std::string& dir : allowed) {
    if (ec) break;
    std::error_code root_ec;
    const fs::path root = fs::canonical(dir, root_ec);
    if (root_ec) continue;
    if (!IsWithin(real, root)) continue;
    struct stat st {};
    if (::stat(real.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError("worker_program: is not a program file");
    }
    return std::make_pair(real.string(), absl::StrCat(st.st_dev, ":", st.st_ino));
  }
  return absl::PermissionDeniedError(
      "worker_program: is not in a folder the operator allows (trainerd --allow-worker-dir)");
}

// The problems of the request's name, program and resources (the spec's are found by
// FindSpecProblems).
std::vector<std::string> RequestProblems(const trainer::v1::SubmitJobRequest& request, const trainer::v1::JobSpec& spec,
                                         const Submitter& submitter, const NodeSlots& capacity,
                                         const JobOptions& options) {
  constexpr int64_t kMaxTimeLimitS = 365LL * 24 * 3600;
  const double grace_period_s = options.grace_period_s;
  std::vector<std::string> problems;
  if (!submitter.admin && request.priority() > options.max_user_priority) {
    problems.push_back(absl::StrCat("priority: at most ", options.max_user_priority,
                                    " for users who are not admins (trainerd --max-user-priority)"));
  }
  const auto& r = request.resources();
  if (r.ranks() < 0) problems.push_back("resources.ranks: must be >= 1");
  if (r.ranks() > 1 && spec.training_args().optim() == "galore_adamw_layerwise") {
    problems.push_back("resources.ranks: galore_adamw_layerwise steps each weight during backward, before gradients "
                       "could be averaged across ranks; use 1 rank");
  }
  if (r.ranks() > capacity.cpu_slots) {
    problems.push_back(absl::StrCat("resources.ranks: ", r.ranks(), " ranks need as many CPU slots; this trainerd has ",
                                    capacity.cpu_slots,
                                    " (--cpu-slots; with --launcher slurm, one per node of the partition)"));
  }
  if (r.gpus_per_rank() < 0) problems.push_back("resources.gpus_per_rank: must be >= 0");
  if (r.gpus_per_rank() > capacity.gpus) {
    problems.push_back(absl::StrCat("resources.gpus_per_rank: no machine of this trainerd has more than ",
                                    capacity.gpus, " GPUs"));
  }
  if (r.time_limit_s() < 0) problems.push_back("resources.time_limit_s: must be >= 0 (0: no limit)");
  if (r.time_limit_s() > 0 && r.time_limit_s() <= grace_period_s) {
    problems.push_back(absl::StrCat("resources.time_limit_s: must be longer than trainerd's grace period (",
                                    grace_period_s, "s), which the ranks get before it to save a checkpoint"));
  }
  if (r.time_limit_s() > kMaxTimeLimitS) {
    problems.push_back(absl::StrCat("resources.time_limit_s: at most ", kMaxTimeLimitS, " (365 days)"));
  }
  if (request.has_max_restarts() && request.max_restarts() < 0) problems.push_back("max_restarts: must be >= 0");
  return problems;
}

absl::Status CheckNameAndProgram(const trainer::v1::SubmitJobRequest& request) {
  if (request.name().size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("name: is ", request.name().size(), " bytes long; at most ", kMaxNameBytes, " are accepted"));
  }
  for (unsigned char ch : request.name()) {
    if (ch < 0x20 || ch == 0x7f) return absl::InvalidArgumentError("name: must not hold control characters");
  }
  if (request.worker_program().size() > kMaxSpecStringBytes) {
    return absl::InvalidArgumentError(absl::StrCat("worker_program: is longer than ", kMaxSpecStringBytes, " bytes"));
  }
  return absl::OkStatus();
}

// The estimate as the API reports it.
trainer::v1::MemoryEstimate MemoryEstimateMessage(const RankMemory& m) {
  trainer::v1::MemoryEstimate out;
  out.set_strategy(m.strategy);
  out.set_ranks(m.ranks);
  out.set_parameters_bytes(static_cast<int64_t>(m.parameters));
  out.set_gradients_bytes(static_cast<int64_t>(m.gradients));
  out.set_optimizer_state_bytes(static_cast<int64_t>(m.optimizer_state));
  out.set_gathered_unit_bytes(static_cast<int64_t>(m.gathered_unit));
  out.set_activations_bytes(static_cast<int64_t>(m.activations));
  out.set_total_bytes(m.total_bytes());
  out.set_summary(m.Describe());
  return out;
}

}  // namespace

std::string NewId(char prefix) {
  ABSL_CONST_INIT static absl::Mutex mu(absl::kConstInit);
  absl::MutexLock lock(&mu);
  static std::mt19937_64 rng{std::random_device{}()};
  std::string id(1, prefix);
  uint64_t v = rng();
  for (size_t i = 0; i < kJobIdDigits; ++i, v >>= 4) id += kHexDigits[v & 15];
  return id;
}

absl::Status CheckWorkerProgram(const Job& job, const std::vector<std::string>& allowed_dirs) {
  if (job.worker_program().empty()) return absl::OkStatus();
  auto resolved = ResolveWorkerProgram(job.worker_program(), allowed_dirs);
  if (!resolved.ok()) return resolved.status();
  // Jobs stored before trainerd recorded the file have no id: only the folder is checked.
  if (job.worker_program_id().empty()) return absl::OkStatus();
  if (resolved->first != job.worker_program() || resolved->second != job.worker_program_id()) {
    return absl::FailedPreconditionError(
        "worker_program: the file was replaced after submission; trainerd runs only the file it checked");
  }
  return absl::OkStatus();
}

absl::StatusOr<trainer::v1::SubmitJobResponse> AdmitJob(const trainer::v1::SubmitJobRequest& request,
                                                        const Submitter& submitter, const NodeSlots& capacity,
                                                        const JobOptions& options) {
  if (absl::Status s = CheckNameAndProgram(request); !s.ok()) return s;
  const bool validate_only = request.validate_only();
  const std::string id = validate_only ? "" : NewId('j');
  // A validation has no folder of its own: its output_dir is a name no file has yet.
  const std::string dir = JobDir(options.data_root, validate_only ? "validate" : id);
  trainer::v1::SubmitJobResponse response;
  trainer::v1::JobSpec spec = request.spec();
  // trainerd owns where a job writes: its output goes under the job's folder. Set before
  // validation, so that paths into the job's own output_dir are allowed.
  const std::string requested_output_dir = spec.training_args().output_dir();
  const std::string output_dir = (fs::path(dir) / kOutputDirName).string();
  spec.mutable_training_args()->set_output_dir(output_dir);
  if (!requested_output_dir.empty() && requested_output_dir != output_dir) {
    response.add_warnings(absl::StrCat("training_args.output_dir: not used; trainerd writes each job's output to its "
                                       "own folder (", validate_only ? "<data-root>/jobs/<id>/output" : output_dir,
                                       "), shown by trainer-cli status"));
  }
  // Exports in the shared registry are named after the job unless the spec names them.
  if (!spec.training_args().has_hub_model_id() && !validate_only) spec.mutable_training_args()->set_hub_model_id(id);
  ApplyDefaults(&spec);
  // user://NAME/... paths: the owner's uploaded files (others' refused), readable by the job.
  std::vector<std::string> user_file_problems;
  ResolveUserFilePaths(&spec, options.data_root, submitter.user, submitter.admin, &user_file_problems);
  SpecCheckOptions check;
  check.policy = options.spec_policy;
  check.policy.user_file_dirs = UserFileDirsOf(spec, options.data_root);
  check.gpus_per_rank = request.resources().gpus_per_rank();
  check.ranks = std::max(1, request.resources().ranks());
  SpecCheckResult checked = CheckJobSpec(spec, check);
  std::vector<std::string> problems = std::move(user_file_problems);
  for (std::string& p : checked.problems) problems.push_back(std::move(p));
  if (checked.memory_per_rank) *response.mutable_memory_per_rank() = MemoryEstimateMessage(*checked.memory_per_rank);
  for (std::string& p : RequestProblems(request, spec, submitter, capacity, options)) problems.push_back(std::move(p));
  if (request.stop_at_step() < 0) problems.push_back("stop_at_step: must be 0 (run to the end) or a step");
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  std::pair<std::string, std::string> program;
  if (!request.worker_program().empty()) {
    auto resolved = ResolveWorkerProgram(request.worker_program(), options.allowed_worker_dirs);
    if (!resolved.ok()) return resolved.status();
    program = *resolved;
  }

  Job& job = *response.mutable_job();
  job.set_id(id);
  job.set_name(request.name().empty() ? job.id() : request.name());
  job.set_owner(submitter.user);
  job.set_owner_id(submitter.user_id);
  job.set_priority(request.priority());
  job.mutable_resources()->set_ranks(std::max(1, request.resources().ranks()));
  job.mutable_resources()->set_gpus_per_rank(request.resources().gpus_per_rank());
  job.mutable_resources()->set_time_limit_s(request.resources().time_limit_s());
  job.set_max_restarts(request.has_max_restarts() ? request.max_restarts() : options.default_max_restarts);
  // The resolved file is what runs, and only while it is still that file (see
  // CheckWorkerProgram): retargeting a symlink after submission changes nothing.
  job.set_worker_program(program.first);
  job.set_worker_program_id(program.second);
  job.set_created_unix_ms(NowMs());
  job.set_output_dir(output_dir);
  if (requested_output_dir != output_dir) job.set_requested_output_dir(requested_output_dir);
  spec.mutable_training_args()->set_run_name(job.name());
  *job.mutable_spec() = spec;
  job.set_state(trainer::v1::QUEUED);
  job.set_stop_at_step(request.stop_at_step());
  job.set_sweep_id(submitter.sweep_id);
  job.set_trial_number(submitter.trial_number);
  response.set_job_id(id);
  if (validate_only) return response;
  std::error_code ec;
  fs::create_directories(job.output_dir(), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", job.output_dir(), ": ", ec.message()));
  if (absl::Status s = WriteFileAtomically(dir + "/" + kSpecFile, JobSpecToJson(spec)); !s.ok()) return s;
  return response;
}

bool IsJobId(const std::string& id) {
  return id.size() == 1 + kJobIdDigits && id[0] == 'j' && id.find_first_not_of(kHexDigits, 1) == std::string::npos;
}

}  // namespace trainerd
