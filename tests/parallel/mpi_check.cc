// Runs under mpirun (tests/parallel/tests.cmake): the MPI communicator's collectives against
// references every rank computes on its own, and its failure handling.
//
//   mpirun -np 3 --oversubscribe ts_mpi_check                 all checks, exit 0 when all pass
//   mpirun -np 2 ts_mpi_check --stall 1 --timeout 3           rank 1 stops itself (SIGSTOP)
//                                                             before the 5th collective: the
//                                                             others must end the job naming it
//   mpirun -np 2 ts_mpi_check --exit 1                        rank 1 exits at that point instead
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace ts {
namespace {

int failures = 0;

#define CHECK_TRUE(cond, ...)                                              \
  do {                                                                     \
    if (!(cond)) {                                                         \
      ++failures;                                                          \
      std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                      \
  } while (0)

// Rank r's contribution to element i: values whose float sum depends on the order of addition.
float Part(int rank, size_t i) {
  return static_cast<float>(std::sin(0.37 * i + rank) * std::pow(10.0, (i + rank) % 7 - 3));
}

// Dies (or stops) where the failure tests want it, before collective number `at`.
struct Fault {
  std::string kind;  // "", "stall", "exit"
  int rank = -1;
  int at = 5;
  int count = 0;
  void Before(const Communicator& comm) {
    if (kind.empty() || comm.rank() != rank || ++count != at) return;
    std::fprintf(stderr, "rank %d: injecting fault '%s'\n", rank, kind.c_str());
    std::fflush(stderr);
    if (kind == "stall") raise(SIGSTOP);
    if (kind == "exit") _exit(7);
  }
};

void Report(Communicator& comm, const Status& s) {
  if (s.ok()) return;
  std::fprintf(stderr, "tokenswift: error: %s\n", std::string(s.message()).c_str());
  std::fflush(stderr);
  comm.Abort(3);
}

void RunChecks(Communicator& comm, Fault& fault) {
  const int rank = comm.rank(), size = comm.size();

  // AllReduceSum: bit-exact with the rank-order sum, on every rank.
  for (size_t n : {size_t{1}, size_t{576}, size_t{576 * 16 + 3}}) {
    std::vector<float> data(n), want(n);
    for (size_t i = 0; i < n; ++i) {
      data[i] = Part(rank, i);
      float sum = Part(0, i);
      for (int r = 1; r < size; ++r) sum += Part(r, i);
      want[i] = sum;
    }
    fault.Before(comm);
    Report(comm, comm.AllReduceSum(data.data(), n));
    CHECK_TRUE(std::memcmp(data.data(), want.data(), n * sizeof(float)) == 0);
  }

  // AllGather: rank r's block at offset r.
  {
    std::vector<int32_t> mine(5), all(5 * size);
    for (int i = 0; i < 5; ++i) mine[i] = 100 * rank + i;
    fault.Before(comm);
    Report(comm, comm.AllGather(mine.data(), mine.size() * sizeof(int32_t), all.data()));
    for (int r = 0; r < size; ++r) {
      for (int i = 0; i < 5; ++i) CHECK_TRUE(all[r * 5 + i] == 100 * r + i);
    }
  }

  // Broadcast from every root.
  for (int root = 0; root < size; ++root) {
    std::vector<uint8_t> data(300, static_cast<uint8_t>(rank == root ? 0 : 0xEE));
    if (rank == root) {
      for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + root);
    }
    fault.Before(comm);
    Report(comm, comm.Broadcast(data.data(), data.size(), root));
    for (size_t i = 0; i < data.size(); ++i) {
      CHECK_TRUE(data[i] == static_cast<uint8_t>(i * 7 + root));
    }
  }

  // MaxReduce: the largest value wins; a tie goes to the lower index; no candidate loses.
  {
    ValueIndex mine{static_cast<double>(rank % 2), 1000 - rank};
    fault.Before(comm);
    StatusOr<ValueIndex> best = comm.MaxReduce(mine);
    Report(comm, best.status());
    if (size == 1) {
      CHECK_TRUE(best->index == 1000);
    } else {
      // Odd ranks hold 1.0; among them the highest rank has the lowest index.
      const int top_odd = (size - 1) % 2 == 1 ? size - 1 : size - 2;
      CHECK_TRUE(best->value == 1.0 && best->index == 1000 - top_odd);
    }
    ValueIndex none{5.0, -1};
    ValueIndex only{-3.0, 42};
    best = comm.MaxReduce(rank == size - 1 ? only : none);
    Report(comm, best.status());
    CHECK_TRUE(best->index == 42 && best->value == -3.0);
  }

  fault.Before(comm);
  Report(comm, comm.Barrier());
  CHECK_TRUE(comm.bytes_sent() > 0 || size == 1);
}

}  // namespace
}  // namespace ts

int main(int argc, char** argv) {
  ts::CommOptions options;
  ts::Fault fault;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--timeout" && i + 1 < argc) {
      options.timeout_seconds = std::atof(argv[++i]);
    } else if ((a == "--stall" || a == "--exit") && i + 1 < argc) {
      fault.kind = a.substr(2);
      fault.rank = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: ts_mpi_check [--timeout S] [--stall RANK | --exit RANK]\n");
      return 2;
    }
  }
  auto comm = ts::MakeCommunicator("mpi", options);
  if (!comm.ok()) {
    std::fprintf(stderr, "tokenswift: error: %s\n", std::string(comm.status().message()).c_str());
    return 2;
  }
  // Several rounds, so the fault lands mid-run.
  for (int round = 0; round < 3; ++round) ts::RunChecks(**comm, fault);
  const int rank = (*comm)->rank(), size = (*comm)->size();
  const long long sent = static_cast<long long>((*comm)->bytes_sent());
  comm->reset();  // MPI_Finalize
  std::printf("rank %d of %d: %s (%d failures), %lld bytes sent\n", rank, size,
              ts::failures == 0 ? "all checks passed" : "FAILED", ts::failures, sent);
  return ts::failures == 0 ? 0 : 1;
}
