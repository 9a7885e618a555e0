// What makes two runs the same job, so that `generate --resume` continues only its own output
// (DESIGN.md 2: a resumed job equals an uninterrupted one). A job's output FILE gets a sidecar
// FILE.job.json with:
//   - the model's identity: its size and a SHA-256 over its first and last 4 MiB (GGUF: the
//     header, metadata and tensor index; HF directories: config.json, tokenizer files and every
//     safetensors file the same way), cheap even for a 16 GB model;
//   - the prompt: its token count and the SHA-256 of its ids (after the chat template);
//   - everything that changes which tokens are drawn: seed, every sampling setting, --ignore-eos,
//     the KV cache's dtype.
// Not in it: the mode, the draft heads, the tree, threads and the TP degree (the tokens are the
// same for all of them), and -n (a resumed job may be extended).
//
//   TS_ASSIGN_OR_RETURN(JobIdentity id, MakeJobIdentity(model_path, prompt_ids, params, ...));
//   TS_RETURN_IF_ERROR(WriteJobIdentity(SidecarPath(output), id));   // a fresh run
//   TS_RETURN_IF_ERROR(CheckResume(SidecarPath(output), id));        // --resume
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/status.h"
#include "nlohmann/json.hpp"
#include "runtime/sampling/sampling_params.h"

namespace ts {

struct JobIdentity {
  nlohmann::json json;  // the sidecar's content
};

// Size + SHA-256 of the first and last 4 MiB of a model file, or of every file in an HF model
// directory (sorted by name); hex. NotFound / BadInput naming --model when unreadable.
StatusOr<std::string> ModelFingerprint(const std::string& model_path);

// SHA-256 of the ids as little-endian int32, hex.
std::string TokensSha256(std::span<const int32_t> ids);

StatusOr<JobIdentity> MakeJobIdentity(const std::string& model_path,
                                      std::span<const int32_t> prompt_ids,
                                      const SamplingParams& sampling, bool ignore_eos,
                                      const std::string& kv_dtype);

std::string SidecarPath(const std::string& output);

// Written to a temporary name and renamed: a crash leaves the old sidecar or the new one.
// RuntimeFailure naming the path when it cannot be written.
Status WriteJobIdentity(const std::string& path, const JobIdentity& id);

// OK when the sidecar at `path` describes the same job; else BadInput naming the first field
// that differs, what the file says and what this run says, e.g.
// "--resume: out.ids was written with --seed 4, this run has --seed 5". A missing or unreadable
// sidecar is BadInput too (the output cannot be checked).
Status CheckResume(const std::string& output, const std::string& path, const JobIdentity& id);

}  // namespace ts
