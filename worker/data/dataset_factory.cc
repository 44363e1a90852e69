#include "worker/data/dataset_factory.h"

#include <string>

#include "worker/data/dataset_reader.h"
#include "worker/data/text_dataset.h"

namespace trainerd {

absl::StatusOr<DatasetBundle> LoadDatasets(const trainer::v1::DataSpec& data, int64_t data_seed,
                                           const TokenSpace* model_tokens) {
  const std::string format = DatasetFormat(data.train());
  if (IsTokenizedJsonl(data.train())) {
    if (model_tokens == nullptr) {
      return absl::InvalidArgumentError("data.train: pre-tokenized rows (input_ids) need a model that brings its "
                                        "vocabulary (model.name_or_path)");
    }
    return LoadTokenizedDatasets(data, data_seed, *model_tokens);
  }
  if (format == "text" || format == "jsonl") return LoadTextDatasets(data, data_seed, model_tokens);
  return LoadTableDatasets(data, data_seed);
}

}  // namespace trainerd
