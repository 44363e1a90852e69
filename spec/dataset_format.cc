#include "spec/dataset_format.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace trainerd {

const std::vector<std::string>& DatasetFormats() {
  static const auto* formats = new std::vector<std::string>{"idx", "csv", "tsv", "text", "jsonl"};
  return *formats;
}

std::string DatasetFormat(const trainer::v1::DatasetSource& s) {
  if (!s.format().empty()) return s.format();
  const std::string& path = s.path();
  if (absl::StrContains(path, ".tsv")) return "tsv";
  if (absl::StrContains(path, ".csv")) return "csv";
  if (absl::StrContains(path, ".jsonl")) return "jsonl";
  if (absl::EndsWith(path, ".txt")) return "text";
  if (absl::StrContains(path, "idx") || absl::StrContains(path, "-ubyte")) return "idx";
  return "";
}

std::vector<std::string> SplitTableRow(const std::string& line, char delimiter) {
  std::vector<std::string> cells;
  std::string cell;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cell += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cell += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == delimiter) {
      cells.push_back(std::string(absl::StripAsciiWhitespace(cell)));
      cell.clear();
    } else if (c != '\r') {
      cell += c;
    }
  }
  cells.push_back(std::string(absl::StripAsciiWhitespace(cell)));
  return cells;
}

}  // namespace trainerd
