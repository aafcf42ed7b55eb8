#!/usr/bin/env python3
"""Run llama.cpp (llama-greedy, greedy from the reference's prompt ids) on several GGUFs and compare with the
reference's greedy continuation. Usage: compat_report.py REF.json LLAMA_GREEDY N THREADS LABEL=PATH ...
A PATH that is "-" prints the label with a reason instead of running (e.g. zoo not built).

Exit 1 when a model fails to load/run, or when a model's first token differs from the same-type baseline (the first
model run with that type in its label: llama.cpp's own quantization). Verdicts against the reference are informational:
MATCH; NEAR-TIE (llama.cpp's token is in the reference's first-step top-10 within TIE logits of the
reference's top-1: llama.cpp quantizes activations to 8 bits in its quantized matmuls, so a near-tie can flip); MISMATCH
(otherwise).
"same as (x)" compares a model's ids with the first model that ran with the same type in its label (Q8_0, Q4_0):
compat.sh lists llama.cpp's own quantizations first, so zoo's files are judged against the same runtime and type."""
import os
TIE = float(os.environ.get("TIE", "0.25"))
import json, re, subprocess, sys

ref_path, greedy, n, threads, *models = sys.argv[1:]
n = int(n)
ref = json.load(open(ref_path))
print(f"reference: {ref.get('model')} / oracle: {ref.get('oracle')}")
bad = 0
# zoo's own runner on the same files (bench/compat.sh sets ZOO_BIN): its greedy ids next to llama.cpp's.
ZOO = os.environ.get("ZOO_BIN")
agree = [0, 0]
for ci, case in enumerate(ref["cases"]):
    user = next((m["content"] for m in case.get("messages", []) if m.get("role") == "user"), "")
    want = case["greedy_ids"][:n]
    print(f"\ncase {ci}: {user[:60]!r} ({len(case['prompt_ids'])} prompt ids)")
    print(f"  {'(d) reference':<34} {' '.join(map(str, want))}   (ref top-2 margin {case['first_step_top10_logits'][0] - case['first_step_top10_logits'][1]:.3f})")
    first_run = {}
    for spec in models:
        label, path = spec.split("=", 1)
        if path.startswith("-"):
            print(f"  {label:<34} {path[1:].strip() or 'skipped'}")
            continue
        r = subprocess.run([greedy, "-m", path, "-n", str(n), "-t", threads, ",".join(map(str, case["prompt_ids"]))],
                           capture_output=True, text=True)
        if r.returncode != 0:
            bad += 1
            print(f"  {label:<34} FAILED to load/run: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
            continue
        out = json.loads(r.stdout)
        got = out["ids"]
        rt = dict(zip(case["first_step_top10_ids"], case["first_step_top10_logits"]))
        ref_top = case["first_step_top10_logits"][0]
        if got[0] == want[0]:
            first = "MATCH"
        elif got[0] in rt and ref_top - rt[got[0]] <= TIE:
            first = f"NEAR-TIE (ref margin {ref_top - rt[got[0]]:.3f})"
        else:
            first = "MISMATCH"
        prefix = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), len(want))
        qt = re.search(r"Q\d_\w+", label)
        key = qt.group(0) if qt else label
        if key not in first_run:
            first_run[key] = (label, got)
            vs = ""
        else:
            base = first_run[key]
            same = next((i for i, (a, b) in enumerate(zip(got, base[1])) if a != b), n)
            vs = f", same as {base[0].split(')')[0]})'s first {same}/{n}"
            if same == 0:
                bad += 1
                vs += "  <-- FIRST TOKEN DIFFERS FROM LLAMA.CPP'S OWN " + key
        print(f"  {label:<34} {' '.join(map(str, got))}   first token {first}, ref prefix {prefix}/{n}{vs}")
        if ZOO and os.access(ZOO, os.X_OK):
            z = subprocess.run([ZOO, "run", path, "--token-ids", ",".join(map(str, case["prompt_ids"])), "--greedy",
                                "--ignore-eos", "--max-tokens", str(n), "--threads", threads, "--json"],
                               capture_output=True, text=True)
            if z.returncode != 0:
                bad += 1
                print(f"  {'  zoo runner, same file':<34} FAILED: {(z.stderr.strip().splitlines() or ['?'])[-1]}")
                continue
            zids = json.loads(z.stdout)["token_ids"]
            same = next((i for i, (a, b) in enumerate(zip(zids, got)) if a != b), n)
            agree[0] += same == n
            agree[1] += 1
            note = ""
            if same == 0:
                bad += 1
                note = "  <-- FIRST TOKEN DIFFERS FROM LLAMA.CPP ON THE SAME FILE"
            print(f"  {'  zoo runner, same file':<34} {' '.join(map(str, zids))}   same as llama.cpp's first {same}/{n}{note}")
if agree[1]:
    print(f"\nzoo runner vs llama.cpp on the same GGUF: all {n} greedy ids equal in {agree[0]} of {agree[1]} runs; first token equal in every run unless flagged above")
sys.exit(1 if bad else 0)
