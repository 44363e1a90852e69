// LoadDatasets: a job's train/eval/test splits from its DataSpec, read by the reader of
// their format (dataset_reader.h for IDX and tables, text_dataset.h for text and JSONL).
// A new dataset format gets a reader beside those and one line here.
#ifndef TRAINERD_WORKER_DATA_DATASET_FACTORY_H_
#define TRAINERD_WORKER_DATA_DATASET_FACTORY_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "trainer/v1/job_spec.pb.h"
#include "worker/data/dataset.h"
#include "worker/data/tokenized_dataset.h"

namespace trainerd {

// Loads every split named in `data`; `data_seed` shuffles a carved eval split.
// `model_tokens`: the vocabulary of a model that brings its own (a Hugging Face folder),
// which pre-tokenized data needs; null for a model sized by the data.
absl::StatusOr<DatasetBundle> LoadDatasets(const trainer::v1::DataSpec& data, int64_t data_seed,
                                           const TokenSpace* model_tokens = nullptr);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_DATA_DATASET_FACTORY_H_
