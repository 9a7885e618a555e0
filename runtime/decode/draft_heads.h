// TokenSwift's draft heads: small residual blocks on top of the target model's last hidden
// state that predict the tokens after next (DESIGN.md section 1.1).
//
// Structure, as released (bigai-nlco/TokenSwift, class MedusaModel in models/modeling_llama*.py
// and models/modeling_qwen2_5.py; 3 heads in every released checkpoint):
//
//   x_0 = h                      (n, hidden): final hidden state BEFORE the model's final norm
//   for head i = 0, 1, 2:
//     x_{i+1} = x_i + linear_i(rms_norm(x_i; input_layernorm_i))    linear_i: [hidden, hidden],
//                                                                   no bias
//     logits_i = lm_head(rms_norm(x_{i+1}; post_layernorm_i))        the model's own lm_head,
//                                                                   no final norm in between
//
// Heads are chained: head i+1 reads head i's residual stream x_{i+1}, not its normed output.
// Every norm uses the model's rms_norm_eps. Tensor names (PyTorch [out, in] order):
//   model.medusa_layers.{i}.input_layernorm.weight   (hidden)
//   model.medusa_layers.{i}.linear.weight            (hidden, hidden)
//   model.medusa_layers.{i}.post_layernorm.weight    (hidden)
// The released checkpoints are whole HF model directories (base weights plus these tensors,
// usually sharded): Load accepts such a directory, a directory of heads only, or one file.
//
// Token input (ours, optional): heads trained by `train-heads --token-input` also read the token
// after their row, which the decoder has already sampled when the heads run (the root of the
// next tree), as in EAGLE's token-shifted input. One more tensor,
//   model.medusa_layers.0.token_linear.weight   (hidden, hidden) T
// turns head 0's block into  x_1 = x_0 + linear_0(rms_norm(x_0)) + T rms_norm(embed(token)),
// rms_norm without a weight (eps as the model's); heads 1.. see it through the chain. Files
// without the tensor are TokenSwift's heads unchanged. Optionally also a SiLU MLP over the
// concatenation u = [rms_norm(x_0; input_layernorm_0); rms_norm(embed(token))]:
//   model.medusa_layers.0.token_mlp.up.weight     (m, 2 hidden) U
//   model.medusa_layers.0.token_mlp.down.weight   (hidden, m) D
// adding D silu(U u) to x_1 as well.
//
// Draft vocabulary (ours, optional): heads trained by `train-heads --draft-vocab K` carry the K
// token ids they were trained to predict in the safetensors metadata "tokenswift.draft_vocab"
// (ascending decimal ids separated by spaces; the K most frequent tokens of the training data,
// as FR-Spec's frequency-ranked draft vocabulary). Apply then multiplies only those rows of
// lm_head (copied as stored on first use, so each logit has the whole product's bits) and
// writes -inf for every other token: a head step reads K rows instead of the whole vocabulary,
// and the heads never propose a token they were not trained on. Verification is unchanged, so
// decoding stays exactly lossless.
//
// Example, one draft step for the last committed token (n = 1):
//   TS_ASSIGN_OR_RETURN(auto heads, DraftHeads::Load(heads_path, model.config(), /*max_rows=*/1));
//   transformer.Forward(batch, partial_cache, logits0, hidden);   // hidden: (1, hidden_size)
//   TS_RETURN_IF_ERROR(heads->Apply(backend, hidden, 1, model.weights().lm_head, logits123));
//   // logits123: (3, 1, vocab); with logits0 these are the 4 distributions of a step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "kernels/backend.h"
#include "kernels/dtype.h"
#include "parallel/communicator.h"
#include "parallel/shard_plan.h"
#include "runtime/model/config.h"
#include "runtime/model/safetensors_writer.h"

namespace ts {

class MappedFile;

// Heads in every released TokenSwift checkpoint (gamma = 4 = 1 + heads).
inline constexpr int kTokenSwiftDraftHeads = 3;

// Safetensors metadata key of the draft vocabulary (see the file comment).
inline constexpr std::string_view kDraftVocabKey = "tokenswift.draft_vocab";

// The token input's linear (see the file comment).
inline constexpr std::string_view kDraftTokenLinearName =
    "model.medusa_layers.0.token_linear.weight";
inline constexpr std::string_view kDraftTokenMlpUpName =
    "model.medusa_layers.0.token_mlp.up.weight";
inline constexpr std::string_view kDraftTokenMlpDownName =
    "model.medusa_layers.0.token_mlp.down.weight";

// "model.medusa_layers.{head}.{part}.weight", part one of input_layernorm, linear,
// post_layernorm.
std::string DraftHeadTensorName(int head, const char* part);

struct DraftHeadWeights {
  const float* input_norm = nullptr;  // (hidden), f32, owned by DraftHeads
  Matrix linear;                      // (hidden, hidden) [out, in], f32/f16/bf16, in a mapped file
  const float* post_norm = nullptr;   // (hidden), f32, owned by DraftHeads
};

class DraftHeads {
 public:
  // Loads `num_heads` heads from `path`: a safetensors file, or a directory whose *.safetensors
  // files hold them (an HF checkpoint, sharded or not; other tensors are ignored). Tensors may be
  // f32, f16 or bf16; the linear weights stay in the mapped file, norms are converted to f32.
  // Scratch is sized for Apply calls of up to `max_rows` rows; nothing is allocated afterwards.
  // BadInput naming the file and tensor for a missing tensor, a wrong shape (against
  // config.hidden_size), an unsupported dtype or a tensor found in two files.
  static StatusOr<std::unique_ptr<DraftHeads>> Load(const std::string& path,
                                                    const ModelConfig& config, int64_t max_rows,
                                                    int num_heads = kTokenSwiftDraftHeads);

  ~DraftHeads();
  DraftHeads(const DraftHeads&) = delete;
  DraftHeads& operator=(const DraftHeads&) = delete;

  // logits_out (num_heads, n, lm_head.rows) = every head's logits for the n rows of `hidden`
  // (n, hidden_size), the final hidden states BEFORE the model's final norm; -inf outside the
  // draft vocabulary when the file has one. Uses only the backend's ops, on scratch owned here:
  // on a device backend the weights and scratch are copied to its memory at the first Apply
  // there (hidden, token_embeddings and logits_out stay host memory: one upload each, one
  // download). Row results do not depend on n (batch invariance
  // is inherited from the ops). token_embeddings: (n, hidden_size) embeddings of the token after
  // each row (Transformer::Embed), required when the heads have a token input and ignored
  // otherwise. BadInput when n is outside [1, max_rows], lm_head's columns are not hidden_size
  // or a required buffer is null.
  Status Apply(Backend& backend, const float* hidden, int64_t n, const Matrix& lm_head,
               float* logits_out, const float* token_embeddings = nullptr);
  // The heads read the token after their row (token_linear present).
  bool has_token_input() const { return token_linear_.data != nullptr; }

  // Tensor parallelism (DESIGN.md 4): keep only output rows `rows` of every head's linear (the
  // shard plan's draft_hidden); Apply then computes those rows and all-gathers the others' over
  // `comm`, so it becomes collective. Each output row is one dot product whatever rows are
  // computed with it, so the gathered stream equals the whole product bit for bit. Collective
  // (the ranks' ranges are exchanged); BadInput when the ranges do not tile [0, hidden_size).
  Status Shard(Range rows, Communicator* comm);
  Range rows() const { return rows_; }
  // Tensor parallelism: lm_head holds the vocabulary rows `vocab` (the shard plan's vocab range);
  // the draft vocabulary is then restricted to them. Default: all rows of the lm_head given.
  void SetVocabRange(Range vocab) {
    vocab_range_ = vocab;
    draft_lm_source_ = nullptr;  // rebuilt on the next Apply
  }
  // Ascending token ids of the draft vocabulary; empty = the whole vocabulary.
  const std::vector<int32_t>& draft_vocab() const { return draft_vocab_; }

  int num_heads() const { return static_cast<int>(heads_.size()); }
  int64_t hidden_size() const { return hidden_; }
  int64_t max_rows() const { return max_rows_; }
  const std::string& source() const { return source_; }
  const DraftHeadWeights& head(int i) const { return heads_[i]; }

 private:
  DraftHeads() = default;
  Status ShardedLinear(Backend& backend, const Matrix& linear, const float* in, int64_t n,
                       float* out);
  // draft_lm_ <- the draft vocabulary's rows of lm_head (those this rank holds), as stored, in
  // `backend`'s memory.
  Status BuildDraftLmHead(const Matrix& lm_head, Backend& backend);
  // A device backend's copies of the weights and scratch (Apply on a backend without host memory).
  struct Placement {
    Backend* backend = nullptr;  // the backend these live on; null until the first device Apply
    std::vector<Buffer> storage;
    std::vector<DraftHeadWeights> heads;
    Matrix token_linear, mlp_up, mlp_down;
    const float* ones = nullptr;
    const float* mlp_ones = nullptr;
    float* hidden = nullptr;  // (max_rows, hidden) the uploaded input
    float* embeddings = nullptr;
    float* normed = nullptr;
    float* stream_a = nullptr;
    float* stream_b = nullptr;
    float* post_normed = nullptr;
    float* token_term = nullptr;
    float* mlp_in = nullptr;
    float* mlp_act = nullptr;
    float* logits = nullptr;  // (num_heads * max_rows, vocab or K) before the download
    int64_t logits_count = 0;
  };
  Status Place(Backend& backend, int64_t vocab);

  std::string source_;
  int64_t hidden_ = 0;
  int64_t max_rows_ = 0;
  float eps_ = 1e-6f;
  std::vector<DraftHeadWeights> heads_;
  Matrix token_linear_;            // (hidden, hidden) T, in a mapped file; data null: none
  std::vector<float> ones_;        // (hidden) the token norm's weight
  std::vector<float> token_term_;  // (max_rows, hidden) T rms_norm(embedding)
  Matrix mlp_up_, mlp_down_;     // the token MLP's U (m, 2 hidden), D (hidden, m); data null: none
  std::vector<float> mlp_in_;    // (max_rows, 2 hidden) u
  std::vector<float> mlp_act_;   // (max_rows, m) U u, then silu of it
  std::vector<float> mlp_ones_;  // (max_rows, m) SwiGlu's up operand
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::vector<std::vector<float>> norms_;  // f32 copies the heads' norm pointers point into
  // Scratch, (max_rows, hidden) each.
  std::vector<float> normed_;    // rms_norm output, the input of a MatMul
  std::vector<float> stream_a_;  // residual streams x_i, alternating between heads
  std::vector<float> stream_b_;
  std::vector<float> post_normed_;  // (num_heads, max_rows, hidden): input of the lm_head product
  // Draft vocabulary.
  std::vector<int32_t> draft_vocab_;       // ascending token ids; empty = every token
  Range vocab_range_{0, -1};               // lm_head's rows as token ids; end -1 = all of lm_head
  const void* draft_lm_source_ = nullptr;  // the lm_head draft_lm_ was built from
  std::vector<int32_t> draft_rows_;        // (K_local) lm_head rows of the draft tokens held here
  std::vector<uint8_t> draft_lm_bytes_;    // (K_local) rows of lm_head, as stored
  Buffer draft_lm_device_;                 // draft_lm_bytes_ on a device backend
  Matrix draft_lm_;                        // view of draft_lm_bytes_ (or draft_lm_device_)
  std::vector<float> draft_logits_;        // (num_heads * max_rows, K_local)
  // Tensor parallelism (Shard).
  Range rows_;                    // this rank's linear output rows; all of them unsharded
  Communicator* comm_ = nullptr;  // null: unsharded
  std::vector<Range> all_rows_;   // every rank's rows
  int64_t max_slice_ = 0;         // largest rank's row count (the all-gather's stride)
  std::vector<float> slice_;      // (max_rows, max_slice): this rank's rows, padded
  std::vector<float> gathered_;   // (ranks, max_rows, max_slice)
  Placement device_;
};

// Random heads, e.g. the starting point of `train-heads` and test inputs. Every value is a pure
// function of (seed, tensor name, element index) through the counter-based HashNormal of
// runtime/model/test_model.h, so files are byte-identical on every platform.
struct RandomHeadsOptions {
  int num_heads = kTokenSwiftDraftHeads;
  DType dtype = DType::kF32;  // of every tensor: kF32, kF16 or kBF16
  float linear_std = 0.0f;    // std of the linear weights; 0 = 1 / sqrt(hidden)
  float norm_noise = 0.1f;    // norm weights = 1 + norm_noise * noise
  bool token_input = false;   // also kDraftTokenLinearName (std as linear_std), after the heads
  int64_t token_mlp = 0;      // with token_input: the token MLP's U and D of this many units
};

// The tensors of random heads (names as DraftHeadTensorName), in head order.
std::vector<SafetensorsTensor> RandomHeadsTensors(int64_t hidden, uint64_t seed,
                                                  const RandomHeadsOptions& options = {});

// Writes RandomHeadsTensors to the safetensors file `path` (metadata format=pt). BadInput for
// hidden < 1 or num_heads < 1; RuntimeFailure when the write fails.
Status WriteRandomHeads(const std::string& path, int64_t hidden, uint64_t seed,
                        const RandomHeadsOptions& options = {});

}  // namespace ts
