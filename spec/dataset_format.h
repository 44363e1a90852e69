// The formats a data source may be in, and which one a source is: the one home of that
// rule, for the validator (which refuses what it cannot tell) and the worker's readers.
#ifndef TRAINERD_SPEC_DATASET_FORMAT_H_
#define TRAINERD_SPEC_DATASET_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "trainer/v1/job_spec.pb.h"

namespace trainerd {

// idx, csv, tsv, text, jsonl.
const std::vector<std::string>& DatasetFormats();

// A source's format: its `format` field, else told by the file name (".csv", ".tsv",
// ".jsonl" anywhere in it, so ".csv.gz" too; a name ending ".txt"; "idx" or "-ubyte" in
// it, as MNIST's files are named). "" when the name does not tell: such a source must
// say its format (a ".parquet" file is not read as IDX by accident).
std::string DatasetFormat(const trainer::v1::DatasetSource& source);

// IDX (MNIST's format): big-endian 32-bit numbers; an images file starts with
// kIdxImagesMagic, then the count, rows and columns; a labels file with kIdxLabelsMagic,
// then the count.
inline constexpr uint32_t kIdxImagesMagic = 2051;
inline constexpr uint32_t kIdxLabelsMagic = 2049;
// The big-endian number at `offset` of `bytes` (which holds at least offset + 4 bytes).
inline uint32_t IdxNumber(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// The cells of one CSV/TSV line: split at `delimiter` outside double quotes (a doubled
// quote inside quotes is one quote), each stripped of surrounding white space, carriage
// returns dropped.
std::vector<std::string> SplitTableRow(const std::string& line, char delimiter);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_DATASET_FORMAT_H_
