"""What measuring task conflict costs: the Trainer with ``conflict_every`` on vs off.

Both sides train a ``MultiTaskModel`` (MiniLM-L6, SNIPS intent + slots; each side its own copy
of the same initial weights) on the same set of length-bucketed batches with the same
optimiser. The "on" side measures the cosine of the two tasks' encoder gradients every
``--every`` steps (``training/conflict.py``: one forward pass of a probe batch and one
``autograd.grad`` per task); each repeat is ``--every`` steps long, so it holds exactly one
measurement. When off, the callback is not added to the trainer at all.

Ratio = time(on) / time(off) per repeat, median over repeats: the slowdown, 1.00x = free.
Informational (no target).

    nice -n 5 .venv/bin/python bench/conflict_overhead.py          # MiniLM, ~1 min on 2 idle cores
    .venv/bin/python bench/conflict_overhead.py --quick            # tiny encoder, seconds
"""

from __future__ import annotations

import copy
import sys

import _common as C
import torch

NAME = "conflict_overhead"


def main(argv: list[str] | None = None) -> dict:
    p = C.parser(__doc__)
    p.add_argument("--every", type=int, default=10, help="conflict_every, also the steps per repeat")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default 8 quick, 32 full)")
    args = p.parse_args(argv)
    plan = C.begin(args, steps=(args.every, args.every))
    device, steps, bs, total = plan.device, plan.steps, plan.batch_size, plan.total_steps

    enc = C.encoder_and_weights(args.quick)[0]
    model, groups = C.snips_features(args.quick, enc)
    group = groups[0]
    feats, _ = C.fixed_batches(group.splits["train"], min(steps, 50), bs, seed=2)
    print(f"{NAME}: {enc.name}, SNIPS intent + slots, {steps} steps x batch {bs} per repeat, "
          f"conflict_every {args.every}, {plan.warmup} warm-up + {plan.repeats} timed repeats, "
          f"{torch.get_num_threads()} threads, {device}", flush=True)
    config = dict(batch_size=bs, max_steps=total + 1, bf16=False, encoder_lr=5e-5, classifier_lr=1e-3)
    train = [C.train_group(group, feats)]
    off, run_off = C.stepped_trainer(copy.deepcopy(model), train, steps, **config)
    on, run_on = C.stepped_trainer(copy.deepcopy(model), train, steps, conflict_every=args.every, **config)
    times = C.interleaved({"off": run_off, "on": run_on}, plan.repeats, plan.warmup, device)
    measured = len(on.history.conflict_rows())
    assert measured == plan.warmup + plan.repeats, measured  # one measurement per repeat
    assert not off.history.conflict_rows()
    slowdown = C.paired_ratio(times["on"], times["off"])  # throughput(off) / throughput(on)
    out_sides = {k: C.side(v, steps * bs, steps) for k, v in times.items()}
    for k, s in out_sides.items():
        print(f"{k:4s} {s['throughput_samples_per_s']:7.1f} samples/s, {s['median_s_per_step']:.3f} s/step")
    settings = plan.settings(encoder=enc.name, conflict_every=args.every, order="AB / BA alternating",
                             ratio="median over repeats of time(on) / time(off)")
    notes = [f"One measurement per repeat of {steps} steps; probe batch = batch size ({bs}) examples.",
             "Each side trains its own copy of the same initial model on the same batches."]
    return C.finish(NAME, args, [C.check("on/off time", slowdown, None)], out_sides, settings, notes,
                    plan.machine_start, line_note=f"overhead {100 * (slowdown - 1):+.1f}% per {steps} steps")


if __name__ == "__main__":
    main(sys.argv[1:])
