// The coordinator's per-step messages of a tensor-parallel TokenSwift job (DESIGN.md section 4):
// rank 0 decides, every other rank executes what it is sent.
//
//   TreeMessage    before the verify pass of a speculative step: the tree to verify (tokens,
//                  parents, rope positions, origins), rooted at `base_position` (the number of
//                  tokens whose K/V is in the full cache). Not sent for a plain AR step: its tree
//                  is the root alone.
//   CommitMessage  after acceptance (and twice after prefill, with step -1): the accepted path
//                  (node indices, root first) of `step`, then what the next step does: its draft
//                  kind and verify rows, whether to calibrate first, and what the next update of
//                  the partial KV cache does (append or select anew).
//
// parallel/ knows no decoding: the kind and the partial-cache action are integers whose meaning
// the decoder owns (runtime/decode/tokenswift_decoder.cc); the checks here are the ones any
// receiver can make on the plain data (counts within capacity, parents before children,
// positions = parent's + 1, a checksum over the used words).
//
// Encoding. A message travels as a fixed-size buffer (StepChannel::bytes(), sized by the largest
// tree), so every rank posts the same broadcast without a length exchange: 32-bit little-endian
// words [magic, version, type, step lo, step hi, n, fields..., FNV-1a of the preceding words], the
// rest zero. With 64-row trees a message is
// 864 bytes (13 per node, 32 of header and checksum).
//
//   StepChannel channel(comm, /*max_nodes=*/64);
//   TreeMessage tree;                      // rank 0 fills it; the others receive it
//   TS_RETURN_IF_ERROR(channel.Exchange(tree));
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "parallel/communicator.h"

namespace ts {

struct TreeMessage {
  int64_t step = 0;
  int32_t base_position = 0;
  std::vector<int32_t> tokens;     // node tokens, root first
  std::vector<int32_t> parents;    // parents[0] = -1, 0 <= parents[i] < i
  std::vector<int32_t> positions;  // base_position + depth
  std::vector<uint8_t> origins;    // per node, the decoder's origin bits (< 256)
};

struct CommitMessage {
  int64_t step = -1;           // the step the path belongs to; -1: after prefill (no path)
  std::vector<int32_t> path;   // accepted node indices, root first
  int32_t next_kind = 0;       // the next step's draft kind (the decoder's code)
  int32_t next_nodes = 1;      // its verify rows, root included
  int32_t partial_action = 0;  // what the next partial-cache update does (the decoder's code)
  bool calibrate = false;      // measure verify costs before the next step
};

// Encodes and checks messages for trees of at most max_nodes nodes (and paths as long).
class StepCodec {
 public:
  explicit StepCodec(int max_nodes);
  size_t bytes() const { return words_ * sizeof(uint32_t); }
  int max_nodes() const { return max_nodes_; }

  // buf (bytes()) <- the message. InternalError when it does not fit max_nodes.
  Status Encode(const TreeMessage& m, std::span<uint8_t> buf) const;
  Status Encode(const CommitMessage& m, std::span<uint8_t> buf) const;
  // The message in buf, or DataLoss naming the field that is wrong (magic, version, type, count,
  // parent, position, origin, checksum).
  Status Decode(std::span<const uint8_t> buf, TreeMessage& m) const;
  Status Decode(std::span<const uint8_t> buf, CommitMessage& m) const;

 private:
  int max_nodes_;
  size_t words_;
};

// Rank 0 sends, every other rank receives (Communicator::Broadcast of one fixed-size buffer).
// Collective. No allocation after construction once the messages' vectors have reached max_nodes.
class StepChannel {
 public:
  StepChannel(Communicator* comm, int max_nodes);
  bool is_coordinator() const { return comm_->rank() == 0; }
  size_t bytes() const { return codec_.bytes(); }
  // Rank 0: m is sent. Other ranks: m <- rank 0's message.
  Status Exchange(TreeMessage& m);
  Status Exchange(CommitMessage& m);

 private:
  template <typename M>
  Status ExchangeT(M& m);
  Communicator* comm_;
  StepCodec codec_;
  std::vector<uint8_t> buf_;
};

}  // namespace ts
