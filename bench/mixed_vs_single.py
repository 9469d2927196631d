"""Does sharing one encoder help or hurt? The mixed run against each task trained alone.

Trains the tasks of a task file (default: examples/tasks/mixed.yml — SNIPS intent + slots,
CoNLL-2003 NER, MRPC pairs) together for ``--steps`` steps, counts how many steps each input
group got from the sampler, then trains every group alone, from the same pretrained encoder,
for exactly that many of its own steps (same batch size, learning rates and schedule shape).
Prints each task's dev metric side by side and writes ``bench/results/mixed_vs_single.json``.

    python bench/mixed_vs_single.py --steps 600            # about 25 min on 2 CPU cores
    python bench/mixed_vs_single.py --quick                # tiny encoder, seconds
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import _common as C  # bench/ is the script's directory, so this is importable
import torch

from mtl_lib import Trainer, TrainerConfig, build_experiment, load_task_file

ROOT = Path(__file__).resolve().parents[1]


def train(tasks, encoder, steps, base: dict, seed: int):
    model, groups = build_experiment(tasks, encoder, max_length=base.get("max_length", 128), seed=seed)
    cfg = TrainerConfig.from_dict({**base, "max_steps": steps, "eval_every": steps, "seed": seed,
                                   "progress": False, "output_dir": None, "epochs": 1})
    trainer = Trainer(model, groups, cfg)
    t0 = time.perf_counter()
    history = trainer.fit()
    per_group = Counter()
    for r in history.train_rows():
        per_group[r["step"], _group_of(groups, r["task"])] = 1
    steps_of = Counter(g for (_, g) in per_group)
    return history.last_metrics(), steps_of, time.perf_counter() - t0


def _group_of(groups, task):
    return next(g.name for g in groups if task in g.task_names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--taskfile", default=str(ROOT / "examples/tasks/mixed.yml"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--encoder", default=None)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--quick", action="store_true", help="tiny encoder, 300 examples, 12 steps")
    ap.add_argument("--results", default=str(ROOT / "bench/results/mixed_vs_single.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tf = load_task_file(args.taskfile)
    encoder = args.encoder or tf.encoder
    steps = args.steps
    if args.quick:
        encoder, steps = "tiny-bert", 12
        for t in tf.tasks:
            t.max_examples = 300
    base = {**tf.training, "batch_size": args.batch_size, "max_length": args.max_length}
    base.pop("max_steps", None)
    base.pop("eval_every", None)

    mixed, steps_of, t_mixed = train(tf.tasks, encoder, steps, base, seed=0)
    print(f"mixed run: {steps} steps in {t_mixed / 60:.1f} min; steps per group: {dict(steps_of)}")
    rows = []
    for group, n in steps_of.items():
        members = [t for t in tf.tasks if t.name in group.split("+")]
        alone, _, t_alone = train(members, encoder, n, base, seed=0)
        for t in members:
            metric = t.metrics[0]
            rows.append({"task": t.name, "metric": metric, "steps": n,
                         "mixed": mixed[t.name][metric], "alone": alone[t.name][metric],
                         "alone_minutes": t_alone / 60})
    print(f"\n{'task':<12} {'metric':<26} {'own steps':>9} {'mixed':>8} {'alone':>8} {'diff':>7}")
    for r in rows:
        diff = 100 * (r["mixed"] - r["alone"])
        print(f"{r['task']:<12} {r['metric']:<26} {r['steps']:>9} {100 * r['mixed']:>7.2f}% "
              f"{100 * r['alone']:>7.2f}% {diff:>+6.2f}")
    out = {"name": "mixed_vs_single", "taskfile": C.repo_relative(args.taskfile), "encoder": encoder,
           "steps": steps, "batch_size": args.batch_size, "max_length": args.max_length,
           "mixed_minutes": t_mixed / 60, "rows": rows, "machine": C.machine_info(),
           "command": "python bench/mixed_vs_single.py "
           + ("--quick" if args.quick else f"--steps {steps} --batch-size {args.batch_size} "
              f"--max-length {args.max_length} --threads {args.threads}")}
    if not args.quick:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(out, indent=2))
    wins = sum(r["mixed"] >= r["alone"] for r in rows)
    print(f"\nsharing helped or tied on {wins} of {len(rows)} tasks")


if __name__ == "__main__":
    main()
