// adapter_config.json, the file peft's save_pretrained writes beside an adapter's
// weights: written as peft 0.10 writes it, read (from peft or trainerd) into a
// PeftConfig, and the adapter a job trains or uses. Torch-free.
#ifndef TRAINERD_SPEC_ADAPTER_CONFIG_H_
#define TRAINERD_SPEC_ADAPTER_CONFIG_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "spec/confined_file.h"
#include "spec/hf_config.h"
#include "trainer/v1/job_spec.pb.h"

namespace trainerd {

inline constexpr char kAdapterConfigFile[] = "adapter_config.json";
inline constexpr char kAdapterWeightsFile[] = "adapter_model.safetensors";

// adapter_config.json as peft's save_pretrained writes it (every key of peft 0.10's
// LoraConfig), targets listed as resolved names (peft writes the set it matched).
std::string AdapterConfigJson(const trainer::v1::PeftConfig& peft, const std::vector<std::string>& target_names,
                              const std::string& base_model_name_or_path);

// Reads DIR/adapter_config.json (written by peft or by trainerd) into a PeftConfig.
// Errors name the file and the key; peft types and options trainerd does not implement
// (DoRA, rank_pattern, alpha_pattern, layer_replication, LoftQ) are refused by name.
absl::StatusOr<trainer::v1::PeftConfig> ReadAdapterConfig(const std::string& dir, const ReadRoots* roots = nullptr);

// The adapter a job trains or uses: its `peft` section, or model.adapter_name_or_path's
// adapter_config.json (with the section's merge_on_save), defaults filled in for the
// model's architecture. Unset when the job has neither.
absl::StatusOr<std::optional<trainer::v1::PeftConfig>> EffectivePeftConfig(const trainer::v1::JobSpec& spec,
                                                                           const HfConfig& config,
                                                                           const ReadRoots* roots = nullptr);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_ADAPTER_CONFIG_H_
