// Readers for the table and image dataset formats (IDX, CSV, TSV), and
// LoadTableDatasets, which builds a job's splits from them. Text formats are in
// text_dataset.h; dataset_factory.h picks between the two.
#ifndef TRAINERD_WORKER_DATA_DATASET_READER_H_
#define TRAINERD_WORKER_DATA_DATASET_READER_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "spec/dataset_format.h"
#include "trainer/v1/job_spec.pb.h"
#include "worker/data/dataset.h"

namespace trainerd {

// Reads a whole file, gunzipping it when it is gzipped (plain files are read as they are).
absl::StatusOr<std::string> ReadMaybeGzipped(const std::string& path);

// Reads IDX files, the format of MNIST and Fashion-MNIST, gzipped or not: images
// (magic 2051, uint8 [N, rows, cols]) become inputs [N, 1, rows, cols]; labels (magic
// 2049) become int64 [N]. `limit` > 0 keeps only the first `limit` examples.
absl::StatusOr<Dataset> ReadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path, int64_t limit);

// Reads a CSV or TSV table with a header row. `label_to_id` maps string class labels to
// ids: pass an empty map for the training split (it is filled, sorted by label), and the
// filled map for eval and test so that ids agree. Integer labels are used as they are.
absl::StatusOr<Dataset> ReadTableDataset(const trainer::v1::DatasetSource& source,
                                         char delimiter, bool regression,
                                         std::map<std::string, int64_t>* label_to_id);

// Loads every split named in `data` (IDX or table files), carves the eval split from
// train when asked (shuffled with `data_seed`), and resolves the normalisation.
absl::StatusOr<DatasetBundle> LoadTableDatasets(const trainer::v1::DataSpec& data, int64_t data_seed);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_DATA_DATASET_READER_H_
