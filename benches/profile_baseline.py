"""Baseline for `cargo bench --bench ingest`: a pure-Python profile pass over LLaVA JSONL,
written the way the GDO reference's first pass works (json.loads per line, pair
extraction, the 7 strata fields, counters). It is our re-statement of method §1 in
Python, not the authors' code; it prints the pair count and seconds as JSON."""
import gzip, json, math, re, sys, time
from collections import Counter

TEMPORAL = re.compile(r"\b(before|after|then|while|during|first|next|finally|sequence|later|earlier|transition|happen)\b", re.I)
MCQ = re.compile(r"(\bchoices?\b)|(\nA\.)|(\nA\))", re.I)
TOK = re.compile(r"[A-Za-z0-9_]+")
MEDIA = re.compile(r"<(image|video|audio)>")


def norm(x):
    return "" if x is None else " ".join(str(x).split())


def resample(n, t):
    return list(range(n)) if n <= t else [round(i * (n - 1) / (t - 1)) for i in range(t)]


def bucket(v, edges, names):
    for e, name in zip(edges, names):
        if v <= e:
            return name
    return names[-1]


def source_group(s):
    s = norm(s)
    if not s:
        return "unknown"
    if "(" in s:
        return s.split("(", 1)[0].strip() or "unknown"
    parts = s.split("_")
    return "_".join(parts[:4]) if len(parts) >= 4 else s


def pairs(messages):
    out, pending = [], ""
    for t in messages or []:
        role = str(t.get("role") or t.get("from") or "").lower()
        text = t.get("content") or t.get("value")
        if role in ("user", "human"):
            pending = norm(MEDIA.sub(" ", str(text or "")))
        elif role in ("assistant", "gpt") and pending:
            a = norm(text)
            if a:
                out.append((pending, a))
            pending = ""
    return out


def profile(path, is_video, counters):
    opener = gzip.open if path.endswith(".gz") else open
    n = 0
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                counters["bad"] += 1
                continue
            images = row.get("images")
            if not isinstance(images, list) or not images:
                continue
            kept = len(resample(len(images), 32)) if is_video else 1
            ds = norm(row.get("data_source")) or ("llava_video" if is_video else "onevision")
            g = source_group(ds)
            for q, a in pairs(row.get("messages")):
                qn, an = len(TOK.findall(q.lower())), len(TOK.findall(a.lower()))
                fields = (
                    "short_video" if is_video else "image_qa",
                    bucket(kept, [1, 8, 24, 64, 160], ["image", "very_short", "short", "medium", "long", "very_long"]),
                    ("Temporal" if TEMPORAL.search(q) else "Mixed") if is_video else "Static",
                    "MCQ" if MCQ.search(q) else "Open",
                    bucket(qn, [6, 14, 30, 60], ["q_tiny", "q_short", "q_medium", "q_long", "q_very_long"]),
                    bucket(an, [2, 8, 24, 64], ["a_tiny", "a_short", "a_medium", "a_long", "a_very_long"]),
                    g,
                )
                for i, v in enumerate(fields):
                    counters[(i, v)] += 1
                counters["|".join(fields)] += 1
                n += 1
    return n


if __name__ == "__main__":
    ov, video = sys.argv[1], sys.argv[2]
    t0 = time.perf_counter()
    c = Counter()
    total = profile(ov, False, c) + profile(video, True, c)
    print(json.dumps({"pairs": total, "seconds": time.perf_counter() - t0}))
