#!/usr/bin/env bash
# Scale check: a generated pool of N pairs (default 10,000,000) through the
# reference-style flow on this machine: gen-samples -> ingest -> metrics -> select.
# Prints wall time and peak RSS of each step (GNU time). Needs ~8 GB of disk per 10M
# pairs while running (the JSONL is deleted after ingest) and `cargo build` first.
#
#   benches/scale.sh [PAIRS] [WORKDIR]
#
# Metric values are a fixed function of pool_index (deterministic, ~97% coverage).
set -euo pipefail
pairs="${1:-10000000}"
work="${2:-$(mktemp -d)}"
gdo="${GDO_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/gdo/target}/debug/gdo}"
timed() { local name="$1"; shift; /usr/bin/time -f "$name: %e s wall, peak RSS %M KB" "$@"; }
mkdir -p "$work"
cd "$work"
rm -rf input pool metrics.parquet select
timed gen-samples "$gdo" gen-samples --synthetic-pairs "$pairs" --out input
timed ingest "$gdo" ingest --onevision input/onevision.jsonl --video input/video.jsonl --out pool
rm -rf input
u="((pool_index * 2654435761 + 12345) % 1000003) / 1000003.0"
v="((pool_index * 40503 + 977) % 999983) / 999983.0"
timed metrics "$gdo" sql --pool pool --format parquet --out metrics.parquet \
  "SELECT qa_uid, 0.2 + 2.8 * $u AS loss_video, 0.2 + 2.8 * $v AS loss_blind,
          0.1 * $v AS frame_diversity, $u - $v AS vds, $v AS quality_score
   FROM pool WHERE pool_index % 100 >= 3"
timed "select temp_plus" "$gdo" select --pool pool --metrics metrics.parquet --goal temp_plus \
  --out select --no-jsonl
echo "work folder: $work"
