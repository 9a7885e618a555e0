#include "runtime/model/safetensors_writer.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <set>

#include "nlohmann/json.hpp"

namespace ts {
namespace {

std::string_view SafetensorsDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    default:
      return "";
  }
}

void PutLittleEndian16(uint16_t v, uint8_t* out) {
  out[0] = static_cast<uint8_t>(v & 0xff);
  out[1] = static_cast<uint8_t>(v >> 8);
}

}  // namespace

uint16_t F32ToBf16Bits(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);  // NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

uint16_t F32ToF16Bits(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity
  if (abs >= 0x38800000u) {                       // normal half: rebias 127 -> 15, round 13 bits
    const uint32_t m = abs - 0x38000000u;
    return sign | static_cast<uint16_t>((m + 0x0fffu + ((m >> 13) & 1u)) >> 13);
  }
  // Subnormal half (or zero): adding 0.5 leaves the value in [0.5, 1), where the f32 ulp is
  // 2^-24, the half subnormal step, so the addition itself rounds to nearest even.
  const float shifted = std::bit_cast<float>(abs) + 0.5f;
  return sign | static_cast<uint16_t>(std::bit_cast<uint32_t>(shifted) - 0x3f000000u);
}

std::vector<uint8_t> EncodeFloats(std::span<const float> values, DType dtype) {
  std::vector<uint8_t> out;
  if (dtype == DType::kF32) {
    out.resize(values.size() * 4);
    for (size_t i = 0; i < values.size(); ++i) {
      const uint32_t b = std::bit_cast<uint32_t>(values[i]);
      for (int k = 0; k < 4; ++k) out[4 * i + k] = static_cast<uint8_t>(b >> (8 * k));
    }
    return out;
  }
  out.resize(values.size() * 2);
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t b = dtype == DType::kBF16 ? F32ToBf16Bits(values[i]) : F32ToF16Bits(values[i]);
    PutLittleEndian16(b, &out[2 * i]);
  }
  return out;
}

StatusOr<std::string> SerializeSafetensors(const std::vector<SafetensorsTensor>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  std::set<std::string> names;
  for (const SafetensorsTensor& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__") {
      return BadInput("safetensors writer: invalid tensor name '", t.name, "'");
    }
    if (!names.insert(t.name).second) {
      return BadInput("safetensors writer: duplicate tensor name '", t.name, "'");
    }
    if (SafetensorsDTypeName(t.dtype).empty()) {
      return BadInput("safetensors writer: tensor '", t.name, "' has dtype ",
                      std::string(GetDTypeInfo(t.dtype).name), ", expected f32, f16 or bf16");
    }
    uint64_t elems = 1;
    for (int64_t d : t.shape) {
      if (d < 0) return BadInput("safetensors writer: tensor '", t.name, "' has a negative dim");
      elems *= static_cast<uint64_t>(d);
    }
    const uint64_t expected = elems * static_cast<uint64_t>(GetDTypeInfo(t.dtype).block_bytes);
    if (expected != t.bytes.size()) {
      return BadInput("safetensors writer: tensor '", t.name, "' has ", t.bytes.size(),
                      " bytes, its shape needs ", expected);
    }
  }

  // Largest elements first keeps every tensor aligned to its element size.
  std::vector<const SafetensorsTensor*> order;
  for (const SafetensorsTensor& t : tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return GetDTypeInfo(a->dtype).block_bytes > GetDTypeInfo(b->dtype).block_bytes;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const SafetensorsTensor* t : order) {
    nlohmann::ordered_json entry;
    entry["dtype"] = SafetensorsDTypeName(t->dtype);
    entry["shape"] = t->shape;
    entry["data_offsets"] = {offset, offset + t->bytes.size()};
    header[t->name] = entry;
    offset += t->bytes.size();
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + header_text.size() + offset);
  const uint64_t header_len = header_text.size();
  for (int k = 0; k < 8; ++k) out.push_back(static_cast<char>((header_len >> (8 * k)) & 0xff));
  out += header_text;
  for (const SafetensorsTensor* t : order) {
    out.append(reinterpret_cast<const char*>(t->bytes.data()), t->bytes.size());
  }
  return out;
}

Status WriteSafetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  TS_ASSIGN_OR_RETURN(std::string bytes, SerializeSafetensors(tensors, metadata));
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return RuntimeFailure(path, ": cannot open for writing");
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.close();
  if (!file) return RuntimeFailure(path, ": write failed");
  return absl::OkStatus();
}

}  // namespace ts
