"""Our ``Trainer`` step vs a minimal hand-written PyTorch loop on the same model and batches.

Both sides train the same ``MultiTaskModel`` (MiniLM-L6, SNIPS intent + slots) on the same
set of batches (``steps`` length-bucketed batches of 32 picked from SNIPS train, padded by
the same ``Collator``), with the same training algorithm: AdamW with the Trainer's two parameter
groups (encoder 5e-5, heads 1e-3, weight decay 0.01; the fused kernel on both sides),
gradient clipping at 1.0 and the same linear schedule. The hand loop (``_common.plain_loop``
with ``multitask_loss``) is what one would write in a notebook::

    for idx in batches:
        b = collate([features[i] for i in idx])
        logits = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        loss = sum(model.compute_losses(logits, b["labels"]).values())
        loss.backward(); clip_grad_norm_(...); opt.step(); sched.step(); opt.zero_grad()

What the Trainer adds is its machinery: the task sampler, batch bookkeeping, NaN checks
(one ``.item()`` per task), the loss weighting, per-step history records, callbacks and the
(empty) end-of-epoch evaluation. Ratio = Trainer samples/s / hand-loop samples/s; target
>= 0.95 (DESIGN §9).

    nice -n 5 .venv/bin/python bench/trainer_overhead.py          # ~1 min on 2 free cores
    .venv/bin/python bench/trainer_overhead.py --quick            # tiny encoder, seconds
"""

from __future__ import annotations

import sys

import _common as C
import torch

NAME = "trainer_overhead"
TARGET = 0.95


def main(argv: list[str] | None = None) -> dict:
    p = C.parser(__doc__)
    p.add_argument("--steps", type=int, default=None, help="optimiser steps per repeat (default 10)")
    args = p.parse_args(argv)
    plan = C.begin(args, steps=(2, 10))
    device, steps, bs, total = plan.device, plan.steps, plan.batch_size, plan.total_steps

    enc = C.encoder_and_weights(args.quick)[0]
    model, groups = C.snips_features(args.quick, enc)
    group = groups[0]
    feats, batches = C.fixed_batches(group.splits["train"], steps, bs, seed=2)
    print(f"{NAME}: {enc.name}, SNIPS intent + slots, {steps} steps x batch {bs} per repeat, "
          f"{plan.warmup} warm-up + {plan.repeats} timed repeats, {torch.get_num_threads()} threads, "
          f"{device}", flush=True)

    _, trainer = C.stepped_trainer(model, [C.train_group(group, feats)], steps, batch_size=bs,
                                   max_steps=total + 1, bf16=False, encoder_lr=5e-5, classifier_lr=1e-3)
    hand_loop = C.plain_loop(model, C.multitask_loss, feats, C.collator(model), device, (5e-5, 1e-3),
                             int(0.1 * total), total)
    sides = {"trainer": trainer, "hand_loop": lambda: hand_loop(batches)}
    times = C.interleaved(sides, plan.repeats, plan.warmup, device)
    ratio = C.paired_ratio(times["hand_loop"], times["trainer"])
    out_sides = {k: C.side(v, steps * bs, steps) for k, v in times.items()}
    for k, s in out_sides.items():
        print(f"{k:10s} {s['throughput_samples_per_s']:7.1f} samples/s, {s['median_s_per_step']:.3f} s/step")
    settings = plan.settings(encoder=enc.name, order="AB / BA alternating",
                             ratio="median over repeats of samples/s(Trainer) / samples/s(hand loop)")
    notes = ["Same model object for both sides (each with its own AdamW state); same batches, "
             "same optimiser, clipping and schedule; fp32 on both sides."]
    return C.finish(NAME, args, [C.check("trainer/hand_loop", ratio, TARGET)], out_sides, settings,
                    notes, plan.machine_start)


if __name__ == "__main__":
    main(sys.argv[1:])
