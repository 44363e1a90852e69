#include "worker/models/safetensors.h"

#include <cstring>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace trainerd {
namespace {

using nlohmann::json;

const std::map<torch::ScalarType, std::string>& DtypeNames() {
  static const auto* names = new std::map<torch::ScalarType, std::string>{
      {torch::kFloat, "F32"},  {torch::kDouble, "F64"}, {torch::kHalf, "F16"},
      {torch::kBFloat16, "BF16"}, {torch::kLong, "I64"}, {torch::kInt, "I32"},
      {torch::kShort, "I16"},  {torch::kChar, "I8"},   {torch::kByte, "U8"},
      {torch::kBool, "BOOL"}};
  return *names;
}

}  // namespace

std::string SafetensorsHeader(const NamedTensors& layout, const std::map<std::string, std::string>& metadata,
                              std::vector<uint64_t>* data_begin) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  if (data_begin != nullptr) data_begin->clear();
  for (const auto& [name, t] : layout) {
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {{"dtype", DtypeNames().at(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    if (data_begin != nullptr) data_begin->push_back(offset);
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + text;
}

std::string EncodeSafetensors(const NamedTensors& tensors,
                              const std::map<std::string, std::string>& metadata) {
  NamedTensors contiguous;
  size_t bytes = 0;
  for (const auto& [name, t] : tensors) {
    contiguous.emplace_back(name, t.detach().contiguous().cpu());
    bytes += contiguous.back().second.numel() * contiguous.back().second.element_size();
  }
  std::string out = SafetensorsHeader(contiguous, metadata);
  out.reserve(out.size() + bytes);
  for (const auto& [name, c] : contiguous) {
    out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  }
  return out;
}

absl::StatusOr<std::vector<SafetensorsEntry>> ParseSafetensors(absl::string_view bytes) {
  if (bytes.size() < 8) return absl::DataLossError("safetensors: shorter than its 8-byte header size");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (n > bytes.size() - 8) return absl::DataLossError("safetensors: header runs past the end of the file");
  json header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + n, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) return absl::DataLossError("safetensors: header is not a JSON object");
  const uint64_t data_start = 8 + n;
  std::vector<SafetensorsEntry> out;
  try {
    for (const auto& [name, info] : header.items()) {
      if (name == "__metadata__") continue;
      SafetensorsEntry entry;
      entry.name = name;
      bool known = false;
      for (const auto& [t, dtype_name] : DtypeNames()) {
        if (info.value("dtype", "") == dtype_name) {
          entry.dtype = t;
          known = true;
        }
      }
      if (!known) return absl::DataLossError(absl::StrCat("safetensors: ", name, ": unknown dtype"));
      entry.shape = info.at("shape").get<std::vector<int64_t>>();
      const auto offsets = info.at("data_offsets").get<std::vector<uint64_t>>();
      // Each dimension is checked against the file's size before multiplying, so that
      // a hostile header can neither overflow the count nor ask for a negative size.
      int64_t numel = 1;
      for (int64_t d : entry.shape) {
        if (d < 0 || (d > 0 && numel > static_cast<int64_t>(bytes.size()) / d)) {
          return absl::DataLossError(absl::StrCat("safetensors: ", name, ": bad shape"));
        }
        numel *= d;
      }
      if (offsets.size() != 2 || offsets[1] < offsets[0] ||
          offsets[1] - offsets[0] != static_cast<uint64_t>(numel) * c10::elementSize(entry.dtype) ||
          offsets[1] > bytes.size() - data_start) {
        return absl::DataLossError(absl::StrCat("safetensors: ", name, ": bad data_offsets"));
      }
      entry.begin = data_start + offsets[0];
      entry.end = data_start + offsets[1];
      out.push_back(std::move(entry));
    }
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat("safetensors: malformed header: ", e.what()));
  }
  return out;
}

absl::StatusOr<NamedTensors> DecodeSafetensors(absl::string_view bytes) {
  absl::StatusOr<std::vector<SafetensorsEntry>> entries = ParseSafetensors(bytes);
  if (!entries.ok()) return entries.status();
  NamedTensors out;
  for (const SafetensorsEntry& entry : *entries) {
    torch::Tensor t = torch::empty(entry.shape, torch::TensorOptions().dtype(entry.dtype));
    std::memcpy(t.data_ptr(), bytes.data() + entry.begin, entry.end - entry.begin);
    out.emplace_back(entry.name, t);
  }
  return out;
}

}  // namespace trainerd
