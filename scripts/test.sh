#!/usr/bin/env bash
# The test suite, as CI runs it: unit tests, the integration binary (fixture parity,
# bad input, kill-and-rerun, an in-process S3 server on loopback) and the outside-reader
# checks with pyarrow, deltalake and Polars (installed into a cache venv when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${GDO_CACHE:-$HOME/.cache/gdo}"
py="${GDO_PYTHON:-python3}"
# Outside readers and consumers: pyarrow, deltalake and Polars read the tables; HF
# datasets (4.0.0, the newest LLaMA-Factory accepts) and PIL load the SFT JSONL; ADBC's
# Flight SQL driver queries the cluster scheduler.
readers="pyarrow deltalake polars datasets==4.0.0 pillow adbc-driver-flightsql"
imports="import pyarrow, deltalake, polars, datasets, PIL, adbc_driver_flightsql.dbapi"
if ! "$py" -c "$imports" >/dev/null 2>&1; then
    venv="$cache/venv"
    if ! "$venv/bin/python" -c "$imports" >/dev/null 2>&1; then
        echo "test.sh: installing $readers into $venv (outside-reader checks)"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $readers
    fi
    py="$venv/bin/python"
fi
export GDO_PYTHON="$py" GDO_REQUIRE_PYARROW=1

# Video files are decoded by FFmpeg's programs (Debian's ffmpeg package).
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "test.sh: installing FFmpeg (apt-get install ffmpeg) for the video-file tests"
        apt-get install -y --no-install-recommends ffmpeg >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends ffmpeg >/dev/null; }
    else
        echo "test.sh: FFmpeg is needed for the video-file tests: install it (e.g. apt-get install ffmpeg)" >&2
        exit 1
    fi
fi
export GDO_REQUIRE_FFMPEG=1

# The product and the test build share every dependency's build (one cold build, not two).
bash scripts/check-features.sh
# Fault injection (kill-and-resume tests) is a test-only feature of the gdo crate.
cargo test --workspace --locked --features fault-injection "$@"
