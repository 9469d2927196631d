"""Our ``Trainer`` step vs a minimal hand-written PyTorch loop on the same model and batches.

Both sides train the same ``MultiTaskModel`` (MiniLM-L6, SNIPS intent + slots) on the same
set of batches (``steps`` length-bucketed batches of 32 picked from SNIPS train, padded by
the same ``Collator``), with the same training algorithm: AdamW with the Trainer's two parameter
groups (encoder 5e-5, heads 1e-3, weight decay 0.01; the fused kernel on both sides),
gradient clipping at 1.0 and the same linear schedule. The hand loop is what one would write in a notebook::

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


def hand_loop(model, features, batches, collate, device, total_steps):
    enc_params, head_params = model.parameter_groups()
    opt = torch.optim.AdamW([{"params": enc_params, "lr": 5e-5}, {"params": head_params, "lr": 1e-3}],
                            weight_decay=0.01, **C.adamw_options(device))
    sched = C.linear_schedule(opt, int(0.1 * total_steps), total_steps)

    def run() -> None:
        model.train()
        for idx in batches:
            b = collate([features[i] for i in idx])
            logits = model(b["input_ids"].to(device), b["attention_mask"].to(device),
                           b["token_type_ids"].to(device) if "token_type_ids" in b else None)
            labels = {t: v.to(device) for t, v in b["labels"].items()}
            loss = sum(model.compute_losses(logits, labels).values())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    return run


def main(argv: list[str] | None = None) -> dict:
    p = C.parser(__doc__)
    p.add_argument("--steps", type=int, default=None, help="optimiser steps per repeat (default 10)")
    args = p.parse_args(argv)
    device = C.setup()
    start = C.machine_info()
    repeats = args.repeats or (2 if args.quick else 5)
    steps = args.steps or (2 if args.quick else 10)
    bs = 8 if args.quick else 32
    warmup = 1

    from mtl_lib import Trainer, TrainerConfig
    from mtl_lib.data import Collator, length_bucketed_batches

    enc = C.encoder_and_weights(args.quick, C.snips_texts(50) if args.quick else None)[0]
    model, groups = C.snips_features(args.quick, enc)
    group = groups[0]
    n = steps * bs
    assert n <= 50 * bs  # one bucket: the Trainer's batches are the same set as ours
    feats = C.bucketed_sample(group.splits["train"], steps, bs, seed=2)
    lengths = [len(f["input_ids"]) for f in feats]
    batches = length_bucketed_batches(lengths, bs, torch.Generator().manual_seed(0))
    collate = Collator(pad_token_id=enc.tokenizer.pad_token_id or 0, padding_side=enc.tokenizer.padding_side)
    print(f"{NAME}: {enc.name}, SNIPS intent + slots, {steps} steps x batch {bs} per repeat, "
          f"{warmup} warm-up + {repeats} timed repeats, {torch.get_num_threads()} threads, {device}",
          flush=True)

    total = (warmup + repeats) * steps
    stopper = C.StopAfter()
    cfg = TrainerConfig(batch_size=bs, max_steps=total + 1, progress=False, bf16=False,
                        encoder_lr=5e-5, classifier_lr=1e-3)
    trainer = Trainer(model, [C.train_group(group, feats)], cfg, callbacks=[stopper])
    sides = {"trainer": C.run_steps(trainer, stopper, steps),
             "hand_loop": hand_loop(model, feats, batches, collate, device, total)}
    times = C.interleaved(sides, repeats, warmup, device)
    ratio = C.paired_ratio(times["hand_loop"], times["trainer"])
    out_sides = {k: C.side(v, n, steps) for k, v in times.items()}
    for k, s in out_sides.items():
        print(f"{k:10s} {s['throughput_samples_per_s']:7.1f} samples/s, {s['median_s_per_step']:.3f} s/step")
    settings = {"repeats": repeats, "warmup_repeats": warmup, "steps_per_repeat": steps,
                "batch_size": bs, "samples_per_repeat": n, "encoder": enc.name,
                "device": str(device), "threads": torch.get_num_threads(),
                "order": "AB / BA alternating",
                "ratio": "median over repeats of samples/s(Trainer) / samples/s(hand loop)"}
    notes = ["Same model object for both sides (each with its own AdamW state); same batches, "
             "same optimiser, clipping and schedule; fp32 on both sides."]
    return C.finish(NAME, args, [C.check("trainer/hand_loop", ratio, TARGET)], out_sides, settings,
                    notes, start)


if __name__ == "__main__":
    main(sys.argv[1:])
