#pragma once
// Data-parallel runs of the example trainers under mpirun (ember::dist). A trainer built with
// MPI (EMBER_WITH_MPI, CMake links ember::dist when MPI is found) trains data-parallel when
// mpirun started it or --dist is given: every process reads its share of each epoch
// (dist::DistributedSampler) in batches of --batch-size / N, so that --batch-size stays the
// global batch and N processes take the same steps as one process with the same flags.
// Rank 0 alone prints, evaluates, writes metrics and saves checkpoints and the model; the other
// processes' standard output goes to /dev/null (their errors still reach stderr).
//
// A trainer built without MPI refuses --dist, and refuses to run under mpirun (each process
// would train alone and write the same files).

#include <cstdio>
#include <string>

#include "cli.hpp"
#include "ember/core/error.hpp"

#ifdef EMBER_WITH_MPI
#include "ember/dist/comm.hpp"
#include "ember/dist/ddp.hpp"
#include "ember/dist/sampler.hpp"
#endif

namespace ember::examples {

/// The process's place in a data-parallel run (a world of one when not distributed).
struct DistRun {
  bool on = false;
  int rank = 0, world = 1;
  [[nodiscard]] bool leader() const { return rank == 0; }
};

/// True when an MPI launcher started this process.
inline bool started_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

/// Joins the MPI job when asked or launched by mpirun; silences stdout on ranks other than 0;
/// checks that the global batch divides among the processes.
inline DistRun start_dist(bool asked, std::int64_t global_batch) {
  DistRun d;
#ifdef EMBER_WITH_MPI
  if (!asked && !started_by_mpirun()) return d;
  dist::init();
  d.on = true;
  d.rank = dist::rank();
  d.world = dist::world_size();
  EMBER_CHECK(global_batch % d.world == 0, "--batch-size ", global_batch,
              " is the global batch and must divide among the ", d.world, " processes");
  if (!d.leader()) {
    if (std::freopen("/dev/null", "w", stdout) == nullptr) std::fclose(stdout);
  }
#else
  (void)global_batch;
  EMBER_CHECK(!asked, "--dist: this program was built without MPI (configure with "
              "libopenmpi-dev installed for ember::dist)");
  EMBER_CHECK(!started_by_mpirun(), "started by mpirun, but this program was built without MPI: "
              "every process would train alone and write the same files (rebuild with "
              "libopenmpi-dev installed)");
#endif
  return d;
}

/// Leaves the MPI job (after the last collective).
inline void finish_dist(const DistRun& d) {
#ifdef EMBER_WITH_MPI
  if (d.on) dist::finalize();
#else
  (void)d;
#endif
}

/// run_main for a trainer that may run under mpirun: an error on any rank ends the whole job
/// (MPI_Abort) so that no process waits for a dead peer.
inline int run_main_dist(const char* name, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
#ifdef EMBER_WITH_MPI
    if (dist::is_initialized() && dist::world_size() > 1) dist::abort(e.what());
#endif
    return 1;
  }
}

}  // namespace ember::examples
