#!/usr/bin/env bash
# The test suite, as CI runs it: unit tests, the integration binary (fixture parity,
# bad input, kill-and-rerun, an in-process S3 server on loopback) and the outside-reader
# checks with pyarrow, deltalake and Polars (installed into a cache venv when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${GDO_CACHE:-$HOME/.cache/gdo}"
py="${GDO_PYTHON:-python3}"
readers="pyarrow deltalake polars"
if ! "$py" -c "import pyarrow, deltalake, polars" >/dev/null 2>&1; then
    venv="$cache/venv"
    if ! "$venv/bin/python" -c "import pyarrow, deltalake, polars" >/dev/null 2>&1; then
        echo "test.sh: installing $readers into $venv (outside-reader checks)"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $readers
    fi
    py="$venv/bin/python"
fi
export GDO_PYTHON="$py" GDO_REQUIRE_PYARROW=1

# The product and the test build share every dependency's build (one cold build, not two).
bash scripts/check-features.sh
cargo test --workspace --locked "$@"
