// Farneback dense optical flow as CUDA kernels: gdo's GPU motion path (`cuda` feature).
//
// The same method, in the same operation order, as the tuned CPU kernel in
// farneback.rs (which follows OpenCV): a Gaussian pyramid, the polynomial expansion
// (sums in double), per pair and level the normal equations from bilinear samples of the
// next frame's coefficients, a 15x15 box filter (sums in double) and the 2x2 solve.
// Frames and pairs of a whole batch run in every launch; one thread per output value.
//
// Layouts (all planar, row-major): frames [N][H][W]; expansion coefficients
// [N][5][h][w] in the order linear y, linear x, yy, xx, xy; flow [P][2][h][w] (dx, dy);
// normal equations [P][5][h][w] (G11, G12, G22, h1, h2).
//
// Built to PTX by udfs/build.rs (nvcc --ptx) and loaded by cuda_flow.rs.

extern "C" {

__device__ __forceinline__ int clamp_i(int v, int lo, int hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

// Reflect-101 border index for offsets smaller than the axis (OpenCV's default border).
__device__ __forceinline__ int reflect101(int i, int n) {
    if (n == 1) return 0;
    if (i < 0) i = -i;
    if (i >= n) i = 2 * n - 2 - i;
    return i;
}

// The value this thread computes in a launch over `planes` planes of h x w: its flat
// index i, plane, column x and row y; false past the end. One thread per value.
struct Pixel {
    long long i, plane, hw;
    int x, y;
};
__device__ __forceinline__ bool pixel_of(long long planes, int h, int w, Pixel& px) {
    px.i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    px.hw = (long long)h * w;
    if (px.i >= planes * px.hw) return false;
    px.x = (int)(px.i % w);
    px.y = (int)((px.i / w) % h);
    px.plane = px.i / px.hw;
    return true;
}

__global__ void fb_to_float(const unsigned char* src, float* dst, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = (float)src[i];
}

// Horizontal pass of the separable Gaussian blur, reflect-101 borders, f32 sums in tap
// order: src, dst [N][h][w]; k [ksize].
__global__ void fb_blur_h(const float* src, float* dst, int n, int h, int w, const float* k, int ksize) {
    Pixel at;
    if (!pixel_of(n, h, w, at)) return;
    long long i = at.i;
    int x = at.x;
    long long row = i - x;
    int r = ksize / 2;
    float s = 0.0f;
    for (int t = 0; t < ksize; t++) s += src[row + reflect101(x + t - r, w)] * k[t];
    dst[i] = s;
}

// Vertical pass of the blur: the first tap assigns, the others accumulate (the CPU
// kernel's order).
__global__ void fb_blur_v(const float* src, float* dst, int n, int h, int w, const float* k, int ksize) {
    Pixel at;
    if (!pixel_of(n, h, w, at)) return;
    long long i = at.i;
    int x = at.x, y = at.y;
    long long plane = at.plane * at.hw;
    int r = ksize / 2;
    float s = 0.0f;
    for (int t = 0; t < ksize; t++) {
        float v = src[plane + (long long)reflect101(y + t - r, h) * w + x] * k[t];
        s = t == 0 ? v : s + v;
    }
    dst[i] = s;
}

// Bilinear resize of `planes` planes [sh][sw] -> [dh][dw], horizontal first, then
// vertical, times `scale` (2 for a flow field moved one pyramid level finer). The tap
// tables hold each destination column's (row's) source index and fraction, half-pixel
// centres with clamped edges (imgops::linear_tab).
__global__ void fb_resize(const float* src, float* dst, int planes, int sh, int sw, int dh, int dw, const int* xi,
                          const float* xf, const int* yi, const float* yf, float scale) {
    Pixel at;
    if (!pixel_of(planes, dh, dw, at)) return;
    long long i = at.i;
    int x = at.x, y = at.y;
    const float* s = src + at.plane * sh * sw;
    int sx0 = xi[x], sx1 = min(sx0 + 1, sw - 1);
    int sy0 = yi[y], sy1 = min(sy0 + 1, sh - 1);
    float fx = xf[x], fy = yf[y];
    float top = s[sy0 * sw + sx0] * (1.0f - fx) + s[sy0 * sw + sx1] * fx;
    float bot = s[sy1 * sw + sx0] * (1.0f - fx) + s[sy1 * sw + sx1] * fx;
    float v = top * (1.0f - fy) + bot * fy;
    dst[i] = scale == 1.0f ? v : v * scale;
}

// Vertical pass of the polynomial expansion: img [N][h][w] -> rows [N][3][h][w], the
// even (g), odd (xg) and squared (xxg) moments along y with replicated borders.
// k holds g, xg, xxg, each 2r+1 taps.
__global__ void fb_expand_v(const float* img, float* rows, int n, int h, int w, const float* k, int r) {
    Pixel at;
    if (!pixel_of(n, h, w, at)) return;
    long long hw = at.hw, f = at.plane;
    int x = at.x, y = at.y;
    const float* src = img + f * hw;
    int taps = 2 * r + 1;
    const float *g = k, *xg = k + taps, *xxg = k + 2 * taps;
    float r0 = src[(long long)y * w + x] * g[r];
    float r1 = 0.0f, r2 = 0.0f;
    for (int t = 1; t <= r; t++) {
        float up = src[(long long)max(y - t, 0) * w + x];
        float dn = src[(long long)min(y + t, h - 1) * w + x];
        float p = up + dn;
        r0 += g[r + t] * p;
        r1 += xg[r + t] * (dn - up);
        r2 += xxg[r + t] * p;
    }
    float* out = rows + f * 3 * hw + (long long)y * w + x;
    out[0] = r0;
    out[hw] = r1;
    out[2 * hw] = r2;
}

// Horizontal pass and the least-squares fit: rows [N][3][h][w] -> coefficients
// [N][5][h][w], sums in double, replicated borders.
__global__ void fb_expand_h(const float* rows, float* coef, int n, int h, int w, const float* k, int r, double ig11,
                            double ig03, double ig33, double ig55) {
    Pixel at;
    if (!pixel_of(n, h, w, at)) return;
    long long hw = at.hw, f = at.plane;
    int x = at.x, y = at.y;
    const float* row0 = rows + f * 3 * hw + (long long)y * w;
    const float* row1 = row0 + hw;
    const float* row2 = row1 + hw;
    int taps = 2 * r + 1;
    const float *g = k, *xg = k + taps, *xxg = k + 2 * taps;
    float g0 = g[r];
    double b1 = (double)(row0[x] * g0), b3 = (double)(row1[x] * g0), b5 = (double)(row2[x] * g0);
    double b2 = 0.0, b4 = 0.0, b6 = 0.0;
    for (int t = 1; t <= r; t++) {
        int xr = min(x + t, w - 1), xl = max(x - t, 0);
        float gk = g[r + t], xgk = xg[r + t], xxgk = xxg[r + t];
        double tg = (double)(row0[xr] + row0[xl]);
        b1 += tg * (double)gk;
        b4 += tg * (double)xxgk;
        b2 += (double)((row0[xr] - row0[xl]) * xgk);
        b3 += (double)((row1[xr] + row1[xl]) * gk);
        b6 += (double)((row1[xr] - row1[xl]) * xgk);
        b5 += (double)((row2[xr] + row2[xl]) * gk);
    }
    float* out = coef + f * 5 * hw + (long long)y * w + x;
    out[0] = (float)(b3 * ig11);
    out[hw] = (float)(b2 * ig11);
    out[2 * hw] = (float)(b1 * ig03 + b5 * ig33);
    out[3 * hw] = (float)(b1 * ig03 + b4 * ig33);
    out[4 * hw] = (float)(b6 * ig55);
}

// Normal equations of the displacement update of pair p (frames prev[p] -> next[p])
// at one pixel, from the current flow; border damping by col_w[x] * row_w[y].
__global__ void fb_matrices(const float* coef, const int* prev, const int* next, const float* flow, float* m, int pairs,
                            int h, int w, const float* col_w, const float* row_w) {
    Pixel at;
    if (!pixel_of(pairs, h, w, at)) return;
    long long hw = at.hw, p = at.plane;
    int x = at.x, y = at.y;
    long long px = (long long)y * w + x;
    const float* c0 = coef + (long long)prev[p] * 5 * hw + px;
    const float* c1 = coef + (long long)next[p] * 5 * hw;
    float dx = flow[p * 2 * hw + px];
    float dy = flow[p * 2 * hw + hw + px];
    float fx = (float)x + dx;
    float fy = (float)y + dy;
    float flx = floorf(fx), fly = floorf(fy);
    fx -= flx;
    fy -= fly;
    float r2, r3, r4, r5, r6;
    // The float compare also rejects NaN and values beyond int range.
    if (flx >= 0.0f && flx < (float)(w - 1) && fly >= 0.0f && fly < (float)(h - 1)) {
        int x1 = (int)flx, y1 = (int)fly;
        float a00 = (1.0f - fx) * (1.0f - fy);
        float a01 = fx * (1.0f - fy);
        float a10 = (1.0f - fx) * fy;
        float a11 = fx * fy;
        const float* b = c1 + (long long)y1 * w + x1;
        float v[5];
        for (int c = 0; c < 5; c++) {
            const float* q = b + c * hw;
            v[c] = a00 * q[0] + a01 * q[1] + a10 * q[w] + a11 * q[w + 1];
        }
        r2 = v[0];
        r3 = v[1];
        r4 = (c0[2 * hw] + v[2]) * 0.5f;
        r5 = (c0[3 * hw] + v[3]) * 0.5f;
        r6 = (c0[4 * hw] + v[4]) * 0.25f;
    } else {
        // Displaced outside the next frame: no observation, keep frame 0's shape.
        r2 = 0.0f;
        r3 = 0.0f;
        r4 = c0[2 * hw];
        r5 = c0[3 * hw];
        r6 = c0[4 * hw] * 0.5f;
    }
    r2 = (c0[0] - r2) * 0.5f;
    r3 = (c0[hw] - r3) * 0.5f;
    r2 += r4 * dy + r6 * dx;
    r3 += r6 * dy + r5 * dx;
    float s = col_w[x] * row_w[y];
    r2 *= s;
    r3 *= s;
    r4 *= s;
    r5 *= s;
    r6 *= s;
    float* out = m + p * 5 * hw + px;
    out[0] = r4 * r4 + r6 * r6;
    out[hw] = (r4 + r5) * r6;
    out[2 * hw] = r5 * r5 + r6 * r6;
    out[3 * hw] = r4 * r2 + r6 * r3;
    out[4 * hw] = r6 * r2 + r5 * r3;
}

// Vertical half of the box filter: column sums over 2r+1 rows, replicated borders, in
// double: m [P][5][h][w] -> t, same shape.
__global__ void fb_box_v(const float* m, double* t, int pairs, int h, int w, int r) {
    Pixel at;
    if (!pixel_of((long long)pairs * 5, h, w, at)) return;
    long long i = at.i;
    int x = at.x, y = at.y;
    const float* plane = m + at.plane * at.hw;
    double s = 0.0;
    for (int k = -r; k <= r; k++) s += (double)plane[(long long)clamp_i(y + k, 0, h - 1) * w + x];
    t[i] = s;
}

// Horizontal half of the box filter and the 2x2 solve: t [P][5][h][w] -> flow [P][2][h][w].
__global__ void fb_box_h_solve(const double* t, float* flow, int pairs, int h, int w, int r, double scale) {
    Pixel at;
    if (!pixel_of(pairs, h, w, at)) return;
    long long hw = at.hw, p = at.plane;
    int x = at.x, y = at.y;
    const double* row = t + p * 5 * hw + (long long)y * w;
    double s[5];
    for (int c = 0; c < 5; c++) {
        const double* rc = row + c * hw;
        double a = 0.0;
        for (int k = -r; k <= r; k++) a += rc[clamp_i(x + k, 0, w - 1)];
        s[c] = a * scale;
    }
    double g11 = s[0], g12 = s[1], g22 = s[2], h1 = s[3], h2 = s[4];
    double idet = 1.0 / (g11 * g22 - g12 * g12 + 1e-3);
    long long px = (long long)y * w + x;
    flow[p * 2 * hw + px] = (float)((g11 * h2 - g12 * h1) * idet);
    flow[p * 2 * hw + hw + px] = (float)((g22 * h1 - g12 * h2) * idet);
}

// Per-pair sums in two launches with no shared memory (so they also run in the CPU
// emulation, and in a fixed order: the same bits on every run, unlike atomics):
// fb_*_partial has thread (pair, slot) sum the pixels slot, slot + slots, ... into
// partial[pair][slot]; fb_sum_slots adds each pair's slots in slot order.

// Flow magnitude sqrt(dx^2 + dy^2) (squares in float, root in double, as the CPU
// kernel): flow [P][2][hw] -> partial [P][slots].
__global__ void fb_magnitude_partial(const float* flow, double* partial, int pairs, int hw, int slots) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)pairs * slots) return;
    long long p = i / slots;
    int slot = (int)(i % slots);
    const float* dx = flow + p * 2 * (long long)hw;
    const float* dy = dx + hw;
    double s = 0.0;
    for (int k = slot; k < hw; k += slots) s += sqrt((double)(dx[k] * dx[k] + dy[k] * dy[k]));
    partial[i] = s;
}

// |prev - next| of the 8-bit frames (frame diversity), exact integer sums:
// gray [N][hw] -> partial [P][slots].
__global__ void fb_absdiff_partial(const unsigned char* gray, const int* prev, const int* next, double* partial,
                                   int pairs, int hw, int slots) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)pairs * slots) return;
    long long p = i / slots;
    int slot = (int)(i % slots);
    const unsigned char* a = gray + (long long)prev[p] * hw;
    const unsigned char* b = gray + (long long)next[p] * hw;
    unsigned long long s = 0;
    for (int k = slot; k < hw; k += slots) s += (unsigned long long)abs((int)a[k] - (int)b[k]);
    partial[i] = (double)s;
}

__global__ void fb_sum_slots(const double* partial, double* sums, int pairs, int slots) {
    long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= pairs) return;
    const double* row = partial + p * slots;
    double s = 0.0;
    for (int k = 0; k < slots; k++) s += row[k];
    sums[p] = s;
}

}  // extern "C"
