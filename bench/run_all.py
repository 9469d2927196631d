"""Run the CPU benchmark set (what ``make bench`` runs) and summarise the ratios.

Each benchmark runs in its own process, one after the other, with settings sized so that the
whole set takes under 10 minutes on 2 otherwise idle cores (longer on a busy machine: the
ratios stay meaningful because each script interleaves its sides). Every script writes
``bench/results/<name>.json``; this runner prints each script's output as it comes, then a
table of every ratio against its target, and writes ``bench/results/run_all.json``.

    nice -n 5 .venv/bin/python bench/run_all.py
    .venv/bin/python bench/run_all.py --only padding inference
    .venv/bin/python bench/run_all.py --quick          # every script in --quick mode (seconds)

Exit status 1 if a script failed; a missed target is reported, not an error (absolute speed
on a shared machine is noisy, and a miss is a finding to read, not a crash).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# (script, arguments for the full run). Settings trade repeats for the 10-minute budget.
SUITE = [
    ("joint_vs_separate", ["--steps", "8", "--repeats", "5"]),
    ("padding", ["--steps", "6", "--repeats", "5"]),
    ("inference", ["--examples", "192", "--repeats", "5"]),
    ("trainer_overhead", ["--steps", "8", "--repeats", "5"]),
    ("memory", []),
    ("quality_per_time", ["--budget", "90", "--rounds", "9"]),
    ("gpu", []),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run the CPU benchmark set.")
    p.add_argument("--only", nargs="+", choices=[s for s, _ in SUITE], help="run only these")
    p.add_argument("--quick", action="store_true", help="every script in --quick mode")
    p.add_argument("--results", default=None, help="results directory (default bench/results)")
    args = p.parse_args(argv)
    if args.results:
        results_dir = Path(args.results)
    elif args.quick:  # quick numbers mean nothing: keep them out of bench/results
        results_dir = Path(tempfile.mkdtemp(prefix="mtl_bench_quick_"))
    else:
        results_dir = BENCH / "results"
    rows, failed, t_all = [], [], time.perf_counter()
    for name, extra in SUITE:
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, str(BENCH / f"{name}.py")]
        if results_dir != BENCH / "results":  # each script's default
            cmd += ["--results", str(results_dir)]
        cmd += ["--quick"] if args.quick else extra
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)
        last = ""
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith("RATIO "):
                last = line.strip()
        code = proc.wait()
        seconds = time.perf_counter() - t0
        if code != 0 or not last:
            failed.append(name)
        rows.append({"name": name, "seconds": round(seconds, 1), "exit": code, "ratio_line": last,
                     "command": " ".join(["python", f"bench/{name}.py"] + cmd[2:])})
    total = time.perf_counter() - t_all
    print(f"\n=== summary ({total / 60:.1f} min)")
    checks = []
    for row in rows:
        path = results_dir / f"{row['name']}.json"
        data = json.loads(path.read_text()) if path.is_file() and row["exit"] == 0 else {}
        for c in data.get("checks", []):
            checks.append({"bench": row["name"]} | c)
            ratio = "n/a" if c["ratio"] is None else (
                f"{100 * c['ratio']:.1f}%" if c.get("unit") == "%" else f"{c['ratio']:.2f}x")
            target = "-" if c["target"] is None else f"{c['op']} {c['target']:.2f}x"
            verdict = {True: "PASS", False: "MISS", None: "info"}[c["passed"]]
            print(f"  {row['name']:18s} {c['label']:26s} {ratio:>8s}  target {target:9s} {verdict}")
        if row["exit"] != 0 or not row["ratio_line"]:
            print(f"  {row['name']:18s} FAILED (exit {row['exit']})")
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "run_all.json").write_text(json.dumps(
        {"name": "run_all", "quick": args.quick, "total_seconds": round(total, 1), "scripts": rows,
         "checks": checks}, indent=1) + "\n")
    print(f"wrote {results_dir / 'run_all.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
