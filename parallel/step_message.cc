#include "parallel/step_message.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace ts {
namespace {

constexpr uint32_t kMagic = 0x4d545354;  // "TSTM" little-endian
constexpr uint32_t kVersion = 1;
constexpr uint32_t kTree = 1;
constexpr uint32_t kCommit = 2;
constexpr size_t kTreeHeader = 7;     // magic, version, type, step lo, step hi, n, base
constexpr size_t kCommitHeader = 10;  // magic, version, type, step lo, step hi, n, kind, nodes,
                                      // partial action, calibrate

// Words are stored little-endian whatever the host (memcpy of bytes in order).
void Put(std::span<uint8_t> buf, size_t i, uint32_t w) {
  const uint8_t b[4] = {static_cast<uint8_t>(w), static_cast<uint8_t>(w >> 8),
                        static_cast<uint8_t>(w >> 16), static_cast<uint8_t>(w >> 24)};
  std::memcpy(buf.data() + 4 * i, b, 4);
}
uint32_t Get(std::span<const uint8_t> buf, size_t i) {
  const uint8_t* b = buf.data() + 4 * i;
  return uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
}

// FNV-1a over the bytes of the first `used` words.
uint32_t Checksum(std::span<const uint8_t> buf, size_t used) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < used * 4; ++i) {
    h ^= buf[i];
    h *= 16777619u;
  }
  return h;
}

Status Bad(const char* field, auto... what) {
  return absl::DataLossError(absl::StrCat("step message: ", field, ": ", what...));
}

Status CheckHeader(std::span<const uint8_t> buf, size_t words, uint32_t type) {
  if (buf.size() < words * 4)
    return Bad("size", "expected ", words * 4, " bytes, got ", buf.size());
  if (Get(buf, 0) != kMagic) return Bad("magic", "expected 0x", absl::Hex(kMagic));
  if (Get(buf, 1) != kVersion) return Bad("version", "expected ", kVersion, ", got ", Get(buf, 1));
  if (Get(buf, 2) != type) {
    return Bad("type", "expected ", type == kTree ? "tree" : "commit", ", got ", Get(buf, 2));
  }
  return absl::OkStatus();
}

}  // namespace

StepCodec::StepCodec(int max_nodes) : max_nodes_(std::max(1, max_nodes)) {
  const size_t m = static_cast<size_t>(max_nodes_);
  words_ = std::max(kTreeHeader + 3 * m + (m + 3) / 4, kCommitHeader + m) + 1;
}

Status StepCodec::Encode(const TreeMessage& m, std::span<uint8_t> buf) const {
  const size_t n = m.tokens.size();
  if (n < 1 || n > static_cast<size_t>(max_nodes_) || m.parents.size() != n ||
      m.positions.size() != n || m.origins.size() != n || buf.size() < bytes()) {
    return absl::InternalError(absl::StrCat("step message: tree of ", n, " nodes does not fit ",
                                            max_nodes_, " (or its arrays disagree)"));
  }
  std::fill(buf.begin(), buf.end(), uint8_t{0});
  size_t w = 0;
  for (uint32_t v : {kMagic, kVersion, kTree, static_cast<uint32_t>(m.step),
                     static_cast<uint32_t>(static_cast<uint64_t>(m.step) >> 32),
                     static_cast<uint32_t>(n), static_cast<uint32_t>(m.base_position)}) {
    Put(buf, w++, v);
  }
  for (int32_t v : m.tokens) Put(buf, w++, static_cast<uint32_t>(v));
  for (int32_t v : m.parents) Put(buf, w++, static_cast<uint32_t>(v));
  for (int32_t v : m.positions) Put(buf, w++, static_cast<uint32_t>(v));
  for (size_t i = 0; i < n; i += 4) {
    uint32_t packed = 0;
    for (size_t j = 0; j < 4 && i + j < n; ++j) packed |= uint32_t{m.origins[i + j]} << (8 * j);
    Put(buf, w++, packed);
  }
  Put(buf, w, Checksum(buf, w));
  return absl::OkStatus();
}

Status StepCodec::Encode(const CommitMessage& m, std::span<uint8_t> buf) const {
  const size_t n = m.path.size();
  if (n > static_cast<size_t>(max_nodes_) || buf.size() < bytes()) {
    return absl::InternalError(
        absl::StrCat("step message: path of ", n, " nodes does not fit ", max_nodes_));
  }
  std::fill(buf.begin(), buf.end(), uint8_t{0});
  size_t w = 0;
  for (uint32_t v :
       {kMagic, kVersion, kCommit, static_cast<uint32_t>(m.step),
        static_cast<uint32_t>(static_cast<uint64_t>(m.step) >> 32), static_cast<uint32_t>(n),
        static_cast<uint32_t>(m.next_kind), static_cast<uint32_t>(m.next_nodes),
        static_cast<uint32_t>(m.partial_action), static_cast<uint32_t>(m.calibrate ? 1 : 0)}) {
    Put(buf, w++, v);
  }
  for (int32_t v : m.path) Put(buf, w++, static_cast<uint32_t>(v));
  Put(buf, w, Checksum(buf, w));
  return absl::OkStatus();
}

Status StepCodec::Decode(std::span<const uint8_t> buf, TreeMessage& m) const {
  TS_RETURN_IF_ERROR(CheckHeader(buf, words_, kTree));
  const uint32_t n = Get(buf, 5);
  if (n < 1 || n > static_cast<uint32_t>(max_nodes_)) {
    return Bad("nodes", "expected 1..", max_nodes_, ", got ", n);
  }
  const size_t used = kTreeHeader + 3 * n + (n + 3) / 4;
  if (Get(buf, used) != Checksum(buf, used)) return Bad("checksum", "mismatch");
  m.step = static_cast<int64_t>(uint64_t{Get(buf, 3)} | uint64_t{Get(buf, 4)} << 32);
  m.base_position = static_cast<int32_t>(Get(buf, 6));
  m.tokens.resize(n);
  m.parents.resize(n);
  m.positions.resize(n);
  m.origins.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    m.tokens[i] = static_cast<int32_t>(Get(buf, kTreeHeader + i));
    m.parents[i] = static_cast<int32_t>(Get(buf, kTreeHeader + n + i));
    m.positions[i] = static_cast<int32_t>(Get(buf, kTreeHeader + 2 * n + i));
    m.origins[i] = static_cast<uint8_t>(Get(buf, kTreeHeader + 3 * n + i / 4) >> (8 * (i % 4)));
    const int32_t p = m.parents[i];
    if (i == 0 ? p != -1 : (p < 0 || p >= static_cast<int32_t>(i))) {
      return Bad("parent", "node ", i, " has parent ", p, ", expected ",
                 i == 0 ? "-1 (the root)" : "an earlier node");
    }
    const int32_t want = i == 0 ? m.base_position : m.positions[p] + 1;
    if (m.positions[i] != want) {
      return Bad("position", "node ", i, " at ", m.positions[i], ", expected ", want);
    }
  }
  return absl::OkStatus();
}

Status StepCodec::Decode(std::span<const uint8_t> buf, CommitMessage& m) const {
  TS_RETURN_IF_ERROR(CheckHeader(buf, words_, kCommit));
  const uint32_t n = Get(buf, 5);
  if (n > static_cast<uint32_t>(max_nodes_)) {
    return Bad("path", "expected at most ", max_nodes_, " nodes, got ", n);
  }
  const size_t used = kCommitHeader + n;
  if (Get(buf, used) != Checksum(buf, used)) return Bad("checksum", "mismatch");
  m.step = static_cast<int64_t>(uint64_t{Get(buf, 3)} | uint64_t{Get(buf, 4)} << 32);
  m.next_kind = static_cast<int32_t>(Get(buf, 6));
  m.next_nodes = static_cast<int32_t>(Get(buf, 7));
  m.partial_action = static_cast<int32_t>(Get(buf, 8));
  const uint32_t calibrate = Get(buf, 9);
  if (calibrate > 1) return Bad("calibrate", "expected 0 or 1, got ", calibrate);
  m.calibrate = calibrate == 1;
  if (m.next_nodes < 1 || m.next_nodes > max_nodes_) {
    return Bad("next_nodes", "expected 1..", max_nodes_, ", got ", m.next_nodes);
  }
  m.path.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    m.path[i] = static_cast<int32_t>(Get(buf, kCommitHeader + i));
    if (m.path[i] < 0 || m.path[i] >= max_nodes_ || (i == 0 && m.path[i] != 0) ||
        (i > 0 && m.path[i] <= m.path[i - 1])) {
      return Bad("path", "node ", m.path[i], " at ", i,
                 ", expected the root first and increasing indices below ", max_nodes_);
    }
  }
  return absl::OkStatus();
}

StepChannel::StepChannel(Communicator* comm, int max_nodes)
    : comm_(comm), codec_(max_nodes), buf_(codec_.bytes()) {}

template <typename M>
Status StepChannel::ExchangeT(M& m) {
  if (comm_->rank() == 0) TS_RETURN_IF_ERROR(codec_.Encode(m, buf_));
  TS_RETURN_IF_ERROR(comm_->Broadcast(buf_.data(), buf_.size(), 0));
  if (comm_->rank() != 0) {
    Status s = codec_.Decode(buf_, m);
    if (!s.ok()) {
      return absl::DataLossError(
          absl::StrCat("rank ", comm_->rank(), ": from rank 0: ", s.message()));
    }
  }
  return absl::OkStatus();
}

Status StepChannel::Exchange(TreeMessage& m) { return ExchangeT(m); }
Status StepChannel::Exchange(CommitMessage& m) { return ExchangeT(m); }

}  // namespace ts
