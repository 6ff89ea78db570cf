"""OpenCV's Farneback motion descriptors over the clips given as JSON on stdin
(the method's parameters; decode with cv2.imread), timed like benches/motion.rs.
calcOpticalFlowFarneback runs on one core, so clips are spread over `threads` Python
threads (OpenCV releases the GIL), as gdo spreads them over its thread pool.
Prints one JSON line: {"clips_per_s": [...per rep...], "amm": [...per clip...]}."""
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

req = json.load(sys.stdin)
cv2.setNumThreads(int(req["threads"]))


def clip_motion(paths):
    gray = []
    for p in paths:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        gray.append(cv2.resize(g, (224, 224), interpolation=cv2.INTER_AREA))
    if len(gray) < 2:
        return 0.0, 0.0
    amm, div = [], []
    for a, b in zip(gray, gray[1:]):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 2, 15, 2, 5, 1.1, 0)
        amm.append(float(np.mean(np.sqrt(flow[..., 0] ** 2 + flow[..., 1] ** 2))))
        div.append(float(np.mean(cv2.absdiff(a, b))) / 255.0)
    return float(np.mean(amm)), float(np.mean(div))


rates, amms = [], []
with ThreadPoolExecutor(max_workers=int(req["threads"])) as pool:
    for rep in range(int(req["reps"])):
        t0 = time.perf_counter()
        amms = [m[0] for m in pool.map(clip_motion, req["clips"])]
        rates.append(len(req["clips"]) / (time.perf_counter() - t0))
print(json.dumps({"clips_per_s": rates, "amm": amms}))
