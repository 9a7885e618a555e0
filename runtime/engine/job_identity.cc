// A job's identity for --resume; see job_identity.h.
#include "runtime/engine/job_identity.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

namespace ts {
namespace {

constexpr char kFormat[] = "tokenswift-job/1";
constexpr int64_t kEdgeBytes = 4 << 20;  // hashed at each end of a model file

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), &EVP_MD_CTX_free) {
    EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr);
  }
  void Update(const void* data, size_t n) { EVP_DigestUpdate(ctx_.get(), data, n); }
  std::string HexDigest() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &n);
    static const char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned int i = 0; i < n; ++i) {
      hex.push_back(kHex[digest[i] >> 4]);
      hex.push_back(kHex[digest[i] & 15]);
    }
    return hex;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

// The file's size, first and last kEdgeBytes into `sha`; its name too when `named` (files of an
// HF directory; a single model file may be renamed or moved and stays the same model).
Status HashFileEdges(const std::filesystem::path& path, bool named, Sha256& sha) {
  std::error_code ec;
  const int64_t size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  std::ifstream in(path, std::ios::binary);
  if (ec || !in) return BadInput("--model: cannot read '", path.string(), "'");
  if (named) {
    const std::string name = path.filename().string();
    sha.Update(name.data(), name.size() + 1);
  }
  sha.Update(&size, sizeof(size));
  std::vector<char> buf(static_cast<size_t>(std::min(size, kEdgeBytes)));
  for (const int64_t offset : {int64_t{0}, std::max<int64_t>(0, size - kEdgeBytes)}) {
    in.seekg(offset);
    if (!in.read(buf.data(), static_cast<std::streamsize>(buf.size()))) {
      return BadInput("--model: cannot read '", path.string(), "'");
    }
    sha.Update(buf.data(), buf.size());
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<std::string> ModelFingerprint(const std::string& model_path) {
  namespace fs = std::filesystem;
  Sha256 sha;
  std::error_code ec;
  if (fs::is_directory(model_path, ec)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(model_path, ec)) {
      if (e.is_regular_file()) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) TS_RETURN_IF_ERROR(HashFileEdges(f, /*named=*/true, sha));
  } else {
    TS_RETURN_IF_ERROR(HashFileEdges(model_path, /*named=*/false, sha));
  }
  return sha.HexDigest();
}

std::string TokensSha256(std::span<const int32_t> ids) {
  Sha256 sha;
  for (const int32_t id : ids) {
    const unsigned char le[4] = {
        static_cast<unsigned char>(id), static_cast<unsigned char>(id >> 8),
        static_cast<unsigned char>(id >> 16), static_cast<unsigned char>(id >> 24)};
    sha.Update(le, 4);
  }
  return sha.HexDigest();
}

StatusOr<JobIdentity> MakeJobIdentity(const std::string& model_path,
                                      std::span<const int32_t> prompt_ids,
                                      const SamplingParams& sampling, bool ignore_eos,
                                      const std::string& kv_dtype) {
  TS_ASSIGN_OR_RETURN(const std::string fingerprint, ModelFingerprint(model_path));
  JobIdentity id;
  nlohmann::json& j = id.json;
  j["format"] = kFormat;
  j["--model"] = {{"file", std::filesystem::path(model_path).filename().string()},
                  {"fingerprint", fingerprint}};
  j["--prompt"] = {{"tokens", prompt_ids.size()}, {"sha256", TokensSha256(prompt_ids)}};
  // Keys are the flags, so a difference names its flag.
  j["--seed"] = sampling.seed;
  j["--temperature"] = sampling.temperature;
  j["--top-k"] = sampling.top_k;
  j["--top-p"] = sampling.top_p;
  j["--min-p"] = sampling.min_p;
  j["--eta"] = sampling.eta;
  j["--penalty"] = sampling.penalty;
  j["--penalty-window"] = sampling.penalty_window;
  j["--ignore-eos"] = ignore_eos;
  j["--kv-dtype"] = kv_dtype;
  return id;
}

std::string SidecarPath(const std::string& output) { return output + ".job.json"; }

Status WriteJobIdentity(const std::string& path, const JobIdentity& id) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return RuntimeFailure("--output: cannot write '", path, "'");
  const std::string text = id.json.dump(2) + "\n";
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !written || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return RuntimeFailure("--output: cannot write '", path, "'");
  }
  return absl::OkStatus();
}

Status CheckResume(const std::string& output, const std::string& path, const JobIdentity& id) {
  std::ifstream in(path);
  if (!in) {
    return BadInput("--resume: '", output, "' has no '", path,
                    "' beside it, so it cannot be checked against this job (written by another "
                    "program or an older tokenswift; move it aside to start the job over)");
  }
  const nlohmann::json there = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (there.is_discarded() || !there.is_object() || there.value("format", "") != kFormat) {
    return BadInput("--resume: '", path, "' is not a tokenswift job file (", kFormat, ")");
  }
  // A field of an object as text ("?" when absent): the file may be hand-edited.
  auto field = [](const nlohmann::json& o, const char* key) -> std::string {
    if (!o.is_object() || !o.contains(key)) return "?";
    return o[key].is_string() ? o[key].get<std::string>() : o[key].dump();
  };
  for (const auto& [flag, here] : id.json.items()) {
    if (flag == "format") continue;
    const nlohmann::json then = there.contains(flag) ? there[flag] : nlohmann::json();
    if (flag == "--model") {
      // The model's bytes decide, not its file name.
      if (field(then, "fingerprint") == field(here, "fingerprint")) continue;
      return BadInput("--resume: '", output, "' was written with another model (",
                      field(then, "file"), ", fingerprint ",
                      field(then, "fingerprint").substr(0, 12), "), this run has ",
                      field(here, "file"), " (", field(here, "fingerprint").substr(0, 12), ")");
    }
    if (then == here) continue;
    if (flag == "--prompt") {
      return BadInput("--resume: '", output, "' was written for another prompt (",
                      field(then, "tokens"), " tokens there, ", field(here, "tokens"), " here)");
    }
    return BadInput("--resume: '", output, "' was written with ", flag, " ", then.dump(),
                    ", this run has ", flag, " ", here.dump());
  }
  return absl::OkStatus();
}

}  // namespace ts
