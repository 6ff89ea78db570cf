#!/usr/bin/env bash
# GPU checks in one run on a machine with an NVIDIA GPU, its driver and the CUDA 13.0
# libraries but no Rust toolchain and no package registry (tested on an NVIDIA H200):
# build here, copy gpu-carry/ there, run there.
#
#   scripts/gpu-check.sh build [TARGETS]   here: builds the CUDA binaries (release, sm_90)
#                                with PyPI's CUDA 13.0 toolchain, strips and xz-packs them
#                                with the motion-reference clips into gpu-carry/ (ignored by
#                                git; kept under 64 MiB so it travels quickly).
#                                TARGETS: some of "udfs-tests motion qwen3_vl gdo" (default
#                                all; the others keep their last build)
#   scripts/gpu-check.sh run [STEPS]       there, from the repository root with gpu-carry/
#                                beside it: unpacks them, finds the CUDA libraries, runs the
#                                GPU tests and the CPU-vs-GPU benchmarks, logs to
#                                $OUT/gpu-check.log. STEPS: some of "1 2 3 4" (default all)
#
# Steps, each under its own time limit (590 s together at most; on an H200 all four
# took 96 s; the 2B-sized checkpoint is 8.5 GB to write and load):
#   1. candle motion unit tests on the GPU (GDO_TEST_MOTION_DEVICE=cuda)
#   2. `gdo describe --cheap-only` over the sample pool with `--device cuda` and on the
#      CPU: the largest AMM and frame-diversity differences between the two tables
#   3. motion throughput: tuned CPU kernel, gdo's CUDA kernels and the candle tensor
#      program on the GPU, and OpenCV (the image's python3 has cv2), all on 16 threads,
#      the 18 reference clips x 32; prints the GPU's AMM agreement with the CPU kernel
#      and with OpenCV
#   4. the Qwen3-VL scorer on the GPU (bf16) against the CPU (f32): the small model,
#      then a Qwen3-VL-2B-sized random-weight model
# Why CUDA 13.0: the driver there is CUDA 13.0 (580.x) and loads PTX no newer than its
# own; candle compiles its kernels to PTX at build time, so nvcc must not be newer.
set -euo pipefail
cd "$(dirname "$0")/.."
carry=gpu-carry

build() {
    local cache="${GDO_CACHE:-$HOME/.cache/gdo}"
    local venv="$cache/cuda130"
    local site cu root link
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
        nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
        nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    cu="$site/nvidia/cu13"
    # A toolkit-shaped folder: cudarc links -lcuda -lcublas -lcublasLt -lcurand -lnvrtc
    # from $CUDA_ROOT/lib. The wheels ship only versioned names, and the driver's
    # libcuda is not on this machine, so a link-time stub with its soname stands in;
    # at run time the real libcuda.so.1 is loaded.
    root="$venv/root"
    link="$venv/link"
    mkdir -p "$root" "$link"
    for d in bin include nvvm; do ln -sfn "$cu/$d" "$root/$d"; done
    ln -sfn "$link" "$root/lib"
    ln -sfn "$link" "$root/lib64"
    for l in cublas cublasLt nvrtc cudart; do ln -sf "$cu/lib/lib$l.so.13" "$link/lib$l.so"; done
    ln -sf "$cu/lib/libcurand.so.10" "$link/libcurand.so"
    local sys
    sys=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs | tail -1)
    grep -ohE 'fn cu[A-Za-z0-9_]+' "$sys" | awk '{print $2}' | sort -u \
        | sed 's/.*/int &(void) { return 999; }/' >"$link/cuda_stub.c"
    cc -shared -fPIC -o "$link/libcuda.so" -Wl,-soname,libcuda.so.1 "$link/cuda_stub.c"

    export PATH="$root/bin:$PATH" CUDA_ROOT="$root" CUDARC_CUDA_VERSION=13000 CUDA_COMPUTE_CAP=90
    export CARGO_TARGET_DIR="${GDO_CUDA_TARGET_DIR:-$cache/target-cuda130}"
    local log targets="${1:-udfs-tests motion qwen3_vl gdo}" t
    log=$(mktemp)
    for t in $targets; do
        case "$t" in
            udfs-tests) cargo test --release --locked --no-run -p gdo-udfs --features cuda --lib --message-format=json ;;
            motion) cargo bench --locked --no-run -p gdo-udfs --features cuda --bench motion --message-format=json ;;
            qwen3_vl) cargo bench --locked --no-run --features cuda --bench qwen3_vl --message-format=json ;;
            gdo) cargo build --locked --profile bench --features cuda --bin gdo --message-format=json ;;
            *)
                echo "gpu-check build: unknown target $t (udfs-tests motion qwen3_vl gdo)" >&2
                exit 2
                ;;
        esac
    done >"$log"
    # Binaries not rebuilt this time stay from the last build.
    rm -rf "$carry/motion-reference"
    mkdir -p "$carry/bin"
    python3 - "$log" "$carry/bin" <<'EOF'
import json, shutil, subprocess, sys
log, out = sys.argv[1], sys.argv[2]
packed = set()
names = {("gdo_udfs", "lib"): "udfs-tests", ("motion", "bench"): "motion", ("qwen3_vl", "bench"): "qwen3_vl",
         ("gdo", "bin"): "gdo"}
for line in open(log):
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    key = (t["name"], "lib" if "lib" in t["kind"] else t["kind"][0])
    if key in names and names[key] not in packed:
        packed.add(names[key])
        dst = f"{out}/{names[key]}"
        shutil.copy(m["executable"], dst)
        subprocess.run(["strip", dst], check=True)
        subprocess.run(["xz", "-T2", "-6", "-f", dst], check=True)
        print("packed", names[key], "from", m["executable"])
EOF
    rm -f "$log"
    cp -r tests/data/reference/motion-reference "$carry/motion-reference"
    [ "$(ls "$carry/bin" | wc -l)" -eq 4 ] || { echo "gpu-check build: expected 4 binaries in $carry/bin" >&2; exit 1; }
    ls -l "$carry/bin"
    echo "gpu-check build: $carry holds $(du -sh "$carry" | cut -f1)"
    local kib
    kib=$(du -sk "$carry" | cut -f1)
    if [ "$kib" -gt $((56 * 1024)) ]; then
        echo "gpu-check build: $carry is ${kib} KiB; with the working tree it must stay under 64 MiB" >&2
        exit 1
    fi
}

# The first file named $1 under the folders that follow.
find_lib() {
    local name=$1
    shift
    { find "$@" -name "$name" 2>/dev/null || true; } | head -1
}

# Step 2: the sample pool described on the CPU and on the GPU, and the two compared.
e2e() {
    local bin=$1 dir=/tmp/gdo-gpu-e2e t0 t1 t2
    rm -rf "$dir"
    "$bin/gdo" ingest --onevision data-samples/onevision.jsonl --video data-samples/video.jsonl \
        --out "$dir/pool" >/dev/null
    t0=$(date +%s.%N)
    "$bin/gdo" describe --pool "$dir/pool" --out "$dir/cpu" --cheap-only >/dev/null
    t1=$(date +%s.%N)
    "$bin/gdo" describe --pool "$dir/pool" --out "$dir/gpu" --cheap-only --device cuda >/dev/null
    t2=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v c="$t2" \
        'BEGIN { printf "describe --cheap-only: cpu %.1f s, cuda %.1f s\n", b - a, c - b }'
    "$bin/gdo" sql --table c="$dir/cpu" --table g="$dir/gpu" \
        "SELECT count(*) AS pairs, count(c.amm) AS with_amm,
                sum(CASE WHEN (c.amm IS NULL) <> (g.amm IS NULL) THEN 1 ELSE 0 END) AS null_mismatch,
                max(abs(c.amm - g.amm)) AS worst_amm_diff,
                max(abs(c.frame_diversity - g.frame_diversity)) AS worst_frame_diversity_diff
         FROM c JOIN g USING (qa_uid)"
}

run() {
    local bin=/tmp/gdo-gpu
    mkdir -p "$bin"
    for f in "$carry"/bin/*.xz; do
        xz -dc "$f" >"$bin/$(basename "$f" .xz)"
        chmod +x "$bin/$(basename "$f" .xz)"
    done
    nvidia-smi -L || true
    # The driver's libcuda, and cuBLAS/cuRAND 13 from the image's Python wheels or toolkit.
    local dirs=""
    for lib in libcuda.so.1 libcublas.so.13 libcublasLt.so.13 libcurand.so.10; do
        local p=""
        # GDO_GPU_LIB_DIRS: folders searched first (a dry run elsewhere, another image).
        # shellcheck disable=SC2086
        [ -z "${GDO_GPU_LIB_DIRS:-}" ] || p=$(find_lib "$lib" ${GDO_GPU_LIB_DIRS})
        [ -n "$p" ] || p=$({ ldconfig -p 2>/dev/null || true; } | awk -v l="$lib" '$1 == l && !f {print $NF; f = 1}')
        [ -n "$p" ] || p=$(find_lib "$lib" /usr/local/nvidia /usr/local/cuda /usr/lib /opt /usr/local/lib)
        if [ -z "$p" ]; then
            echo "gpu-check: $lib not found"
            exit 1
        fi
        echo "gpu-check: $lib -> $p"
        dirs="$dirs:$(dirname "$p")"
    done
    export LD_LIBRARY_PATH="${dirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    for b in "$bin"/*; do
        if ldd "$b" | grep "not found"; then
            echo "gpu-check: $(basename "$b") misses libraries"
            exit 1
        fi
    done
    local threads steps=" $1 "
    threads=$(nproc)
    local status=0
    if [[ $steps == *" 1 "* ]]; then
        echo "== 1. candle motion unit tests on cuda (CUDA kernels and tensor program)"
        GDO_TEST_MOTION_DEVICE=cuda timeout 45 "$bin/udfs-tests" candle --test-threads 1 || status=1
    fi
    if [[ $steps == *" 2 "* ]]; then
        echo "== 2. gdo describe --cheap-only on the sample pool: --device cuda against the CPU"
        timeout 75 bash "$0" e2e "$bin" || status=1
    fi
    if [[ $steps == *" 3 "* ]]; then
        echo "== 3. motion throughput, $threads threads: tuned CPU kernel, candle on cuda, OpenCV"
        GDO_BENCH_MOTION_DEVICE=cuda GDO_BENCH_THREADS="$threads" GDO_BENCH_CLIP_COPIES=32 GDO_BENCH_FRAME_BATCHES=256 GDO_BENCH_GPU_WORKERS="1 2 3" \
            GDO_MOTION_REFERENCE="$PWD/$carry/motion-reference" GDO_REPO_ROOT="$PWD" GDO_BENCH_PYTHON=python3 \
            timeout 130 "$bin/motion" --bench || status=1
    fi
    if [[ $steps == *" 4 "* ]]; then
        echo "== 4a. Qwen3-VL scorer, small model: cuda bf16 vs CPU f32"
        GDO_BENCH_DEVICE=cuda GDO_BENCH_PAIRS=64 GDO_BENCH_CPU_PAIRS=16 GDO_BENCH_RUNS=3 \
            timeout 60 "$bin/qwen3_vl" --bench || status=1
        echo "== 4b. Qwen3-VL scorer, 2B-sized random weights: cuda bf16 vs CPU f32"
        GDO_BENCH_DEVICE=cuda GDO_BENCH_MODEL=2b GDO_BENCH_PAIRS=32 GDO_BENCH_CPU_PAIRS=2 GDO_BENCH_RUNS=1 \
            TMPDIR=/tmp timeout 280 "$bin/qwen3_vl" --bench || status=1
    fi
    echo "gpu-check: done, status $status"
    return $status
}

case "${1:-}" in
    build) build "${2:-}" ;;
    run)
        # $OUT: the folder whose files are copied back from the GPU machine.
        out="${OUT:-/tmp/gpu-check-out}"
        mkdir -p "$out"
        run "${2:-1 2 3 4}" 2>&1 | tee "$out/gpu-check.log"
        ;;
    e2e) e2e "$2" ;;
    *)
        echo "usage: scripts/gpu-check.sh build|run (e2e BIN_DIR: step 2 alone)" >&2
        exit 2
        ;;
esac
