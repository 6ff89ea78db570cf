#!/usr/bin/env bash
# Video files read in place against the usual route (extract the kept frames as JPEG
# with ffmpeg first, then ingest the frame lists), side by side in one run: N generated
# clips (320x240, 300 frames, H.264), the time of each step and the mean AMM of both.
#
#   benches/video_files.sh            # N=40 clips, gdo from target/debug
#   N=200 GDO_BIN=target/release/gdo benches/video_files.sh
set -euo pipefail
gdo=${GDO_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/debug/gdo}
n=${N:-40}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir -p clips frames
for i in $(seq 1 "$n"); do
    ffmpeg -v error -y -f lavfi -i "testsrc2=size=320x240:rate=30" -frames:v 300 -pix_fmt yuv420p "clips/c$i.mp4"
done
# The 32 frames the method keeps of 300 (uniform resampling; no index falls on a half).
select=$(python3 -c "print('+'.join(f'eq(n\\\\,{round(i * 299 / 31)})' for i in range(32)))")
python3 - "$n" <<'PY'
import json, sys
n = int(sys.argv[1])
turns = [{"from": "human", "value": "<video>\nWhat happens first?"}, {"from": "gpt", "value": "It moves."}]
with open("videos.jsonl", "w") as v, open("frames.jsonl", "w") as f:
    for i in range(1, n + 1):
        v.write(json.dumps({"id": f"c{i}", "video": f"clips/c{i}.mp4", "conversations": turns}) + "\n")
        frames = [f"frames/c{i}/{k:03d}.jpg" for k in range(1, 33)]
        f.write(json.dumps({"id": f"c{i}", "video_id": f"c{i}", "images": frames, "conversations": turns}) + "\n")
PY
secs() { local s; s=$(date +%s.%N); "$@" >/dev/null 2>&1; python3 -c "print(f'{$(date +%s.%N) - $s:.2f}')"; }
extract() {
    for i in $(seq 1 "$n"); do
        mkdir -p "frames/c$i"
        ffmpeg -v error -y -i "clips/c$i.mp4" -vf "select='$select'" -fps_mode passthrough -q:v 2 "frames/c$i/%03d.jpg"
    done
}
echo "in place: ingest $(secs "$gdo" ingest --video videos.jsonl --out pool_v) s," \
    "describe $(secs "$gdo" describe --cheap-only --pool pool_v --out desc_v) s"
echo "extracted: extract $(secs extract) s (one clip at a time)," \
    "ingest $(secs "$gdo" ingest --video frames.jsonl --out pool_f) s," \
    "describe $(secs "$gdo" describe --cheap-only --pool pool_f --out desc_f) s"
"$gdo" sql --format csv -c "SELECT 'in place' AS route, avg(amm) AS mean_amm, count(error) AS errors FROM 'desc_v'
                             UNION ALL SELECT 'extracted', avg(amm), count(error) FROM 'desc_f'"
