// Compiles src/motion/farneback.cu as plain C++ so its kernels can run on a CPU (the
// kernel_emulation test): one "thread" at a time, in launch order. This works because
// no kernel there shares memory between threads or waits for others (keep it so).
#include <algorithm>
#include <cmath>
#include <cstdlib>
using std::max;
using std::min;
struct Dim3 {
    unsigned x, y, z;
};
static Dim3 blockIdx, blockDim, threadIdx;
#define __global__
#define __device__
#define __forceinline__ inline
