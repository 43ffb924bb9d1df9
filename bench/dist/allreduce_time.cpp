// allreduce_time: how long ember::dist's all-reduce of the MNIST net's gradient buckets takes
// between the processes of `mpirun -np N` (no training around it): the first bucket (fc2 and
// fc1's bias, 1,418 floats), the second (the rest, 1,198,464) and all 1,199,882 gradients in one.
// Each size 30 times after a barrier; rank 0 prints the median and the minimum.
//
//   mpirun -np 2 --oversubscribe build/release/bench/allreduce_time
//
// On the 2-core development machine under load (docs/distributed.md) one run printed (a second:
// medians 0.009, 5.7 and 6.0 ms):
//   all_reduce 1418 floats (0.01 MB): median 0.010 ms, min 0.009 ms
//   all_reduce 1198464 floats (4.79 MB): median 9.053 ms, min 3.944 ms
//   all_reduce 1199882 floats (4.80 MB): median 11.944 ms, min 3.296 ms
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "ember/dist/comm.hpp"

int main(int argc, char** argv) {
  using namespace ember;
  dist::init(&argc, &argv);
  for (const std::int64_t n : {std::int64_t{1418}, std::int64_t{1198464}, std::int64_t{1199882}}) {
    std::vector<float> v(static_cast<std::size_t>(n), 1.0f);
    std::vector<double> t;
    for (int i = 0; i < 30; ++i) {
      dist::barrier();
      const auto t0 = std::chrono::steady_clock::now();
      dist::all_reduce_async(v.data(), n).wait();
      t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    if (dist::rank() == 0)
      std::printf("all_reduce %lld floats (%.2f MB): median %.3f ms, min %.3f ms\n",
                  static_cast<long long>(n), static_cast<double>(n) * 4e-6, t[15] * 1e3,
                  t[0] * 1e3);
  }
  dist::finalize();
  return 0;
}
