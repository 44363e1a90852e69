#include "worker/data/dataset_factory.h"

#include <string>

#include "worker/data/dataset_reader.h"
#include "worker/data/text_dataset.h"

namespace trainerd {

absl::StatusOr<DatasetBundle> LoadDatasets(const trainer::v1::DataSpec& data, int64_t data_seed) {
  const std::string format = DatasetFormat(data.train());
  if (format == "text" || format == "jsonl") return LoadTextDatasets(data, data_seed);
  return LoadTableDatasets(data, data_seed);
}

}  // namespace trainerd
