// The resume guard (runtime/engine/job_identity.h): hashes against Python's hashlib, fingerprints
// that see what they promise to see, and CheckResume messages that name what differs.
#include "runtime/engine/job_identity.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace ts {
namespace {

namespace fs = std::filesystem;

class JobIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ts_job_identity_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string WriteBytes(const std::string& name, const std::vector<char>& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    return path;
  }

  fs::path dir_;
};

// Reference digests from Python: hashlib.sha256(struct.pack('<3i', 1, -2, 70000)).hexdigest().
TEST_F(JobIdentityTest, TokensSha256MatchesHashlib) {
  EXPECT_EQ(TokensSha256({}), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::vector<int32_t> abcd = {0x64636261};  // the bytes "abcd"
  EXPECT_EQ(TokensSha256(abcd), "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589");
  const std::vector<int32_t> ids = {1, -2, 70000};
  EXPECT_EQ(TokensSha256(ids), "abb19db5eea990b951334da75d85f7dce355b2025e520e3f88ef8a4b199ff3cd");
}

TEST_F(JobIdentityTest, FingerprintFollowsContentNotPath) {
  std::vector<char> bytes(10 << 20, 'x');  // 10 MiB: the middle 2 MiB is not read
  const std::string a = WriteBytes("a.gguf", bytes);
  const std::string b = WriteBytes("b.gguf", bytes);
  auto fa = ModelFingerprint(a);
  ASSERT_TRUE(fa.ok()) << fa.status();
  EXPECT_EQ(*fa, *ModelFingerprint(b));  // a copy elsewhere is the same model

  bytes[0] = 'y';  // the header
  EXPECT_NE(*ModelFingerprint(WriteBytes("c.gguf", bytes)), *fa);
  bytes[0] = 'x';
  bytes.back() = 'y';  // the last tensor's data
  EXPECT_NE(*ModelFingerprint(WriteBytes("d.gguf", bytes)), *fa);
  bytes.back() = 'x';
  bytes.push_back('x');  // the size
  EXPECT_NE(*ModelFingerprint(WriteBytes("e.gguf", bytes)), *fa);

  auto missing = ModelFingerprint((dir_ / "none.gguf").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(ExitCodeFor(missing.status()), 2);
  EXPECT_NE(missing.status().message().find("--model"), std::string::npos);
}

TEST_F(JobIdentityTest, CheckResumeNamesWhatDiffers) {
  const std::string model = WriteBytes("m.gguf", std::vector<char>(1000, 'm'));
  const std::vector<int32_t> prompt = {5, 6, 7};
  SamplingParams sampling;
  sampling.seed = 5;
  sampling.penalty = 1.2f;
  auto make = [&](const std::vector<int32_t>& p, const SamplingParams& s, bool ignore_eos) {
    auto id = MakeJobIdentity(model, p, s, ignore_eos, "bf16");
    EXPECT_TRUE(id.ok()) << id.status();
    return *id;
  };
  const std::string output = (dir_ / "out.ids").string();
  const std::string sidecar = SidecarPath(output);
  EXPECT_EQ(sidecar, output + ".job.json");
  ASSERT_TRUE(WriteJobIdentity(sidecar, make(prompt, sampling, false)).ok());

  // The same job, read back from the file (floats survive the JSON round trip).
  EXPECT_TRUE(CheckResume(output, sidecar, make(prompt, sampling, false)).ok());

  SamplingParams other = sampling;
  other.seed = 6;
  Status s = CheckResume(output, sidecar, make(prompt, other, false));
  EXPECT_EQ(ExitCodeFor(s), 2);
  EXPECT_NE(s.message().find("--seed 5, this run has --seed 6"), std::string::npos) << s;

  other = sampling;
  other.penalty = 1.1f;
  s = CheckResume(output, sidecar, make(prompt, other, false));
  EXPECT_NE(s.message().find("--penalty"), std::string::npos) << s;
  s = CheckResume(output, sidecar, make(prompt, sampling, true));
  EXPECT_NE(s.message().find("--ignore-eos false, this run has --ignore-eos true"),
            std::string::npos)
      << s;
  s = CheckResume(output, sidecar, make({5, 6, 8}, sampling, false));
  EXPECT_NE(s.message().find("another prompt"), std::string::npos) << s;
  auto kv = MakeJobIdentity(model, prompt, sampling, false, "f32");
  s = CheckResume(output, sidecar, *kv);
  EXPECT_NE(s.message().find("--kv-dtype"), std::string::npos) << s;

  // The same model renamed: the same job.
  fs::copy_file(model, dir_ / "renamed.gguf");
  auto renamed = MakeJobIdentity((dir_ / "renamed.gguf").string(), prompt, sampling, false, "bf16");
  EXPECT_TRUE(CheckResume(output, sidecar, *renamed).ok());

  // Another model: the same name with other bytes.
  WriteBytes("m.gguf", std::vector<char>(1000, 'n'));
  s = CheckResume(output, sidecar, make(prompt, sampling, false));
  EXPECT_NE(s.message().find("another model"), std::string::npos) << s;

  // No sidecar, or a file that is not one.
  s = CheckResume(output, (dir_ / "none.json").string(), make(prompt, sampling, false));
  EXPECT_EQ(ExitCodeFor(s), 2);
  EXPECT_NE(s.message().find("none.json"), std::string::npos) << s;
  const std::string junk = WriteBytes("junk.json", {'{', '"', 'a', '"', ':', '1', '}'});
  s = CheckResume(output, junk, make(prompt, sampling, false));
  EXPECT_NE(s.message().find("not a tokenswift job file"), std::string::npos) << s;
}

TEST_F(JobIdentityTest, UnwritableSidecarIsARuntimeFailure) {
  const std::string model = WriteBytes("m.gguf", std::vector<char>(10, 'm'));
  auto id = MakeJobIdentity(model, std::vector<int32_t>{1}, SamplingParams{}, false, "bf16");
  ASSERT_TRUE(id.ok());
  const Status s = WriteJobIdentity((dir_ / "no" / "such" / "dir.job.json").string(), *id);
  EXPECT_EQ(ExitCodeFor(s), 1);
  EXPECT_NE(s.message().find("dir.job.json"), std::string::npos) << s;
}

}  // namespace
}  // namespace ts
