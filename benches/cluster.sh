#!/usr/bin/env bash
# `gdo describe --cheap-only` throughput on one pool, side by side in one run: in
# process, on a loopback cluster with one executor, and with two. The pool is the
# sample pool (real frames) repeated COPIES times under new ids.
#
#   benches/cluster.sh                     # COPIES=4 (3,600 pairs), gdo from target/debug
#   COPIES=20 SLOTS=4 GDO_BIN=target/release/gdo benches/cluster.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
gdo=${GDO_BIN:-$root/target/debug/gdo}
copies=${COPIES:-4}
slots=${SLOTS:-2}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
python3 - "$root/data-samples" "$copies" <<'PY'
import json, os, sys
src, copies = sys.argv[1], int(sys.argv[2])
for name in ("onevision.jsonl", "video.jsonl"):
    rows = []
    for line in open(os.path.join(src, name)):
        try:  # the sample files hold a few malformed lines on purpose; ingest rejects them
            rows.append(json.loads(line))
        except ValueError:
            pass
    with open(name, "w") as out:
        for c in range(copies):
            for r in rows:
                r = dict(r, id=f"{r['id']}-{c}")
                for key in ("image", "images", "video"):
                    v = r.get(key)
                    if isinstance(v, str):
                        r[key] = os.path.join(src, v)
                    elif isinstance(v, list):
                        r[key] = [os.path.join(src, x) for x in v]
                out.write(json.dumps(r) + "\n")
PY
"$gdo" ingest --onevision onevision.jsonl --video video.jsonl --out pool >/dev/null
pairs=$("$gdo" sql --format csv --pool pool "SELECT count(*) FROM pool" | tail -1)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sched=$(port)
"$gdo" scheduler --bind-port "$sched" 2>/dev/null & pids+=($!)
executor() {
    mkdir -p "ex$1"
    "$gdo" executor --scheduler "df://127.0.0.1:$sched" -c "$slots" --work-dir "ex$1" \
        -p "$(port)" --grpc-port "$(port)" 2>/dev/null & pids+=($!)
    until [ "$(curl -s "http://127.0.0.1:$sched/api/executors" | grep -o '"host"' | wc -l)" -ge "$1" ]; do sleep 0.2; done
}
run() { # label, out, extra args
    local label=$1 out=$2; shift 2
    local s; s=$(date +%s.%N)
    "$gdo" describe --cheap-only --pool pool --out "$out" "$@" >/dev/null
    python3 -c "t = $(date +%s.%N) - $s; print(f'{\"$label\":<22} {t:7.2f} s  {$pairs / t:8.1f} pairs/s')"
}
echo "describe --cheap-only, $pairs pairs, $(nproc) cores; executors with $slots task slots"
run "local" d_local
executor 1
run "cluster, 1 executor" d_one --cluster "df://127.0.0.1:$sched"
executor 2
run "cluster, 2 executors" d_two --cluster "df://127.0.0.1:$sched"
same=$("$gdo" sql --format csv --table a=d_local --table b=d_two \
    "SELECT count(*) FROM (SELECT * FROM a EXCEPT SELECT * FROM b)" | tail -1)
echo "rows of the local run missing from the 2-executor run: $same"
