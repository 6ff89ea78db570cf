// Runs the motion kernels of src/motion/farneback.cu on the CPU (through shim.h) in the
// order src/motion/cuda_flow.rs launches them, on the frames and tables that the
// kernel_emulation test writes to argv[1], and prints each clip's AMM and frame
// diversity.
#include <cstdio>
#include <fstream>
#include <vector>

#include "shim.h"
#include "../../src/motion/farneback.cu"

using std::vector;

template <class F>
void launch(long long n, F kernel) {
    blockDim.x = 256;
    for (long long b = 0; b < (n + 255) / 256; b++) {
        blockIdx.x = (unsigned)b;
        for (unsigned t = 0; t < 256; t++) {
            threadIdx.x = t;
            kernel();
        }
    }
}

template <class T>
vector<T> read(std::ifstream& in, long long n) {
    vector<T> v(n);
    for (auto& x : v) in >> x;
    return v;
}

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    std::ifstream in(argv[1]);
    int w, h, n, clips, P, levels, r, box_r, iterations;
    in >> w >> h >> n >> clips;
    vector<int> clip_len = read<int>(in, clips);
    vector<int> gray_i = read<int>(in, (long long)n * w * h);
    vector<unsigned char> gray(gray_i.begin(), gray_i.end());
    in >> P;
    vector<int> prev = read<int>(in, P), next = read<int>(in, P);
    in >> r >> box_r >> iterations;
    vector<float> taps = read<float>(in, 3 * (2 * r + 1));
    double ig11, ig03, ig33, ig55;
    in >> ig11 >> ig03 >> ig33 >> ig55;
    in >> levels;
    long long total = (long long)n * w * h;
    vector<float> full(total), tmp(total), blurred(total), flow;
    launch(total, [&] { fb_to_float(gray.data(), full.data(), total); });
    int fw = 0, fh = 0;
    for (int l = 0; l < levels; l++) {
        int lw, lh, ks;
        in >> lw >> lh >> ks;
        vector<float> blur = read<float>(in, ks);
        vector<int> xi = read<int>(in, lw), yi = read<int>(in, lh);
        vector<float> xf = read<float>(in, lw), yf = read<float>(in, lh);
        vector<int> uxi = read<int>(in, l ? lw : 0), uyi = read<int>(in, l ? lh : 0);
        vector<float> uxf = read<float>(in, l ? lw : 0), uyf = read<float>(in, l ? lh : 0);
        vector<float> col_w = read<float>(in, lw), row_w = read<float>(in, lh);
        launch(total, [&] { fb_blur_h(full.data(), tmp.data(), n, h, w, blur.data(), ks); });
        launch(total, [&] { fb_blur_v(tmp.data(), blurred.data(), n, h, w, blur.data(), ks); });
        long long hw = (long long)lw * lh;
        vector<float> img = blurred;
        if (lw != w || lh != h) {
            img.assign(n * hw, 0.0f);
            launch(n * hw, [&] {
                fb_resize(blurred.data(), img.data(), n, h, w, lh, lw, xi.data(), xf.data(), yi.data(), yf.data(), 1.0f);
            });
        }
        vector<float> rows(3 * n * hw), coef(5 * n * hw);
        launch(n * hw, [&] { fb_expand_v(img.data(), rows.data(), n, lh, lw, taps.data(), r); });
        launch(n * hw, [&] {
            fb_expand_h(rows.data(), coef.data(), n, lh, lw, taps.data(), r, ig11, ig03, ig33, ig55);
        });
        vector<float> fl(2 * P * hw, 0.0f);
        if (l > 0) {
            launch(2 * P * hw, [&] {
                fb_resize(flow.data(), fl.data(), 2 * P, fh, fw, lh, lw, uxi.data(), uxf.data(), uyi.data(), uyf.data(),
                          2.0f);
            });
        }
        vector<float> m(5 * P * hw);
        vector<double> t(5 * P * hw);
        auto matrices = [&] {
            launch(P * hw, [&] {
                fb_matrices(coef.data(), prev.data(), next.data(), fl.data(), m.data(), P, lh, lw, col_w.data(),
                            row_w.data());
            });
        };
        matrices();
        for (int it = 0; it < iterations; it++) {
            launch(5 * P * hw, [&] { fb_box_v(m.data(), t.data(), P, lh, lw, box_r); });
            double scale = 1.0 / ((2 * box_r + 1) * (2 * box_r + 1));
            launch(P * hw, [&] { fb_box_h_solve(t.data(), fl.data(), P, lh, lw, box_r, scale); });
            if (it + 1 < iterations) matrices();
        }
        flow = fl;
        fw = lw;
        fh = lh;
    }
    // The per-pair sums, as cuda_flow.rs reduces them; then its host arithmetic.
    long long hw = (long long)fw * fh;
    const int slots = 512;
    vector<double> partial((long long)P * slots), magnitude(P), absdiff(P);
    launch((long long)P * slots, [&] { fb_magnitude_partial(flow.data(), partial.data(), P, (int)hw, slots); });
    launch(P, [&] { fb_sum_slots(partial.data(), magnitude.data(), P, slots); });
    launch((long long)P * slots,
           [&] { fb_absdiff_partial(gray.data(), prev.data(), next.data(), partial.data(), P, (int)hw, slots); });
    launch(P, [&] { fb_sum_slots(partial.data(), absdiff.data(), P, slots); });
    int at = 0;
    for (int c = 0; c < clips; c++) {
        int pairs = clip_len[c] - 1;
        double amm = 0.0, div = 0.0;
        for (int k = 0; k < pairs; k++) amm += magnitude[at + k] / (double)hw;
        for (int k = 0; k < pairs; k++) div += absdiff[at + k] / (double)hw / 255.0;
        at += pairs > 0 ? pairs : 0;
        if (pairs > 0) {
            amm /= pairs;
            div /= pairs;
        }
        printf("%.17g %.17g\n", amm, div);
    }
    return 0;
}
