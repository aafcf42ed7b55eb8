#!/usr/bin/env python3
"""Run a command N times (after one warm-up) and print min / median / max wall time in ms.
Usage: time_cmd.py N LABEL -- CMD ARGS..."""
import statistics
import subprocess
import sys
import time

n, label = int(sys.argv[1]), sys.argv[2]
cmd = sys.argv[sys.argv.index("--") + 1:]
subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
times = []
for _ in range(n):
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times.append((time.perf_counter() - t) * 1000)
    if r.returncode not in (0, 1):
        sys.exit(f"{label}: exit {r.returncode}: {' '.join(cmd)}")
print(f"{label:<44} min {min(times):7.2f} ms   median {statistics.median(times):7.2f} ms   max {max(times):7.2f} ms   (n={n})")
