"""SNIPS dev quality after the same wall-clock training budget: joint model vs two fine-tunes.

Same total budget for both approaches, as they would run on one machine: the joint
``MultiTaskModel`` (mtl_lib ``Trainer``, one encoder pass per batch for intent + slots) trains
for B seconds; the two separate plain ``transformers`` fine-tunes
(``AutoModelForSequenceClassification`` for intent, ``AutoModelForTokenClassification`` for
slots, from the same MiniLM weights) train for B/2 seconds each, since they would run one
after the other.

To keep the shared machine's load from favouring one side, training is interleaved in
rounds: each round gives the joint model B/R seconds and each separate model B/(2R) seconds
(a round ends after the step that crosses its share; the overshoot is carried over, so the
totals match to within one step). Evaluation time is not counted.

Same optimisation on both sides: AdamW (fused), encoder lr 2e-4 and heads 1e-3 (the demo's
settings), weight decay 0.01, clipping at 1.0, 20 warm-up steps then an almost constant lr
(linear decay over 10,000 steps: no side is helped by a schedule tuned to the budget), batch
32, length-bucketed batches over all 13,084 SNIPS training utterances.

Reported: dev intent accuracy, slot F1 (seqeval, entity level) and sentence accuracy of both.
The ratio line is score(joint) / score(separate), score = mean of intent accuracy and slot
F1 (no target in DESIGN §9; the joint model is expected to be ahead).

    nice -n 5 .venv/bin/python bench/quality_per_time.py --budget 120   # ~4.5 min
    .venv/bin/python bench/quality_per_time.py --quick                  # tiny encoder, seconds
"""

from __future__ import annotations

import sys
import time

import _common as C
import torch

NAME = "quality_per_time"
WARMUP_STEPS = 20
SCHEDULE_STEPS = 10_000
ENC_LR, HEAD_LR = 2e-4, 1e-3


class TimeBudget:
    """Trainer callback: stop ``fit`` once the cumulative training time reaches ``target``."""

    def __init__(self) -> None:
        self.used = 0.0
        self.target = 0.0
        self._t0 = 0.0

    def on_fit_start(self, trainer) -> None:
        self._t0 = time.perf_counter()

    def on_step_end(self, trainer, record) -> None:
        if self.used + time.perf_counter() - self._t0 >= self.target:
            trainer.should_stop = True

    def on_fit_end(self, trainer, history) -> None:
        self.used += time.perf_counter() - self._t0


class PlainFineTune:
    """A ``transformers`` model trained by the plain loop (``_common.plain_loop``) in time
    slices, on length-bucketed epochs of ``features`` one after the other."""

    def __init__(self, model, task, features, collate, device, batch_size, seed):
        self.features, self.device, self.bs, self.seed = features, device, batch_size, seed
        self._loop = C.plain_loop(model, C.transformers_loss(task), features, collate, device,
                                  (ENC_LR, HEAD_LR), WARMUP_STEPS, SCHEDULE_STEPS)
        self.used, self.steps, self.samples = 0.0, 0, 0
        self._epoch, self._batches = -1, []

    def _next(self) -> list[int]:
        from mtl_lib.data import length_bucketed_batches

        if not self._batches:
            self._epoch += 1
            gen = torch.Generator().manual_seed(self.seed * 1000 + self._epoch)
            lengths = [len(f["input_ids"]) for f in self.features]
            self._batches = length_bucketed_batches(lengths, self.bs, gen)
        return self._batches.pop()

    def train_until(self, target: float) -> None:
        """Train until the slices' total time reaches ``target`` (the last step crosses it)."""
        t0 = time.perf_counter()

        def batches():  # the next batch while time is left, counted as it is handed out
            while self.used + time.perf_counter() - t0 < target:
                idx = self._next()
                self.steps += 1
                self.samples += len(idx)
                yield idx

        self._loop(batches())
        C.sync(self.device)
        self.used += time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    p = C.parser(__doc__)
    p.add_argument("--budget", type=float, default=None,
                   help="training seconds per approach (default 120; --quick 4)")
    p.add_argument("--rounds", type=int, default=None, help="interleaving rounds (default 12)")
    args = p.parse_args(argv)
    plan = C.begin(args)
    device, bs = plan.device, plan.batch_size
    budget = args.budget or (4.0 if args.quick else 120.0)
    rounds = args.rounds or (2 if args.quick else 12)

    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    from mtl_lib import Trainer, TrainerConfig, evaluate

    enc, weights_dir, _tmp = C.encoder_and_weights(args.quick)
    model, groups = C.snips_features(args.quick, enc, splits=("train", "dev"))
    group = groups[0]
    train = group.splits["train"]
    intent, slots = group.tasks
    print(f"{NAME}: {enc.name}, SNIPS {len(train)} train / {len(group.splits['dev'])} dev; budget "
          f"{budget:.0f}s joint vs {budget / 2:.0f}s + {budget / 2:.0f}s separate, in {rounds} "
          f"interleaved rounds; {torch.get_num_threads()} threads, {device}", flush=True)

    cfg = TrainerConfig(batch_size=bs, max_steps=SCHEDULE_STEPS, warmup_ratio=WARMUP_STEPS / SCHEDULE_STEPS,
                        encoder_lr=ENC_LR, classifier_lr=HEAD_LR, progress=False, bf16=False, seed=42)
    clock = TimeBudget()
    trainer = Trainer(model, [C.train_group(group, train)], cfg, callbacks=[clock])
    collate = C.collator(model)
    cls = AutoModelForSequenceClassification.from_pretrained(
        weights_dir, num_labels=len(intent.labels), local_files_only=True)
    tok = AutoModelForTokenClassification.from_pretrained(
        weights_dir, num_labels=len(slots.labels), local_files_only=True)
    sep_cls = PlainFineTune(cls, "intent", train, collate, device, bs, seed=1)
    sep_tok = PlainFineTune(tok, "slots", train, collate, device, bs, seed=2)

    for r in range(1, rounds + 1):
        clock.target = budget * r / rounds
        if clock.used < clock.target:  # fit always takes at least one step
            trainer.fit()
        sep_cls.train_until(budget / 2 * r / rounds)
        sep_tok.train_until(budget / 2 * r / rounds)
        print(f"  round {r}/{rounds}: joint {trainer.step} steps / {clock.used:.0f}s, intent model "
              f"{sep_cls.steps} / {sep_cls.used:.0f}s, slots model {sep_tok.steps} / {sep_tok.used:.0f}s",
              flush=True)

    joint = evaluate(model, [group], "dev", device=device)
    separate = evaluate(C.TransformersAsMultiTask({"intent": cls, "slots": tok}, enc.tokenizer, model.types),
                        [group], "dev", device=device)

    def summary(m: dict) -> dict:
        return {"intent_accuracy": m["intent"]["classification_accuracy"],
                "slot_f1": m["slots"]["seqeval_f1_score"],
                "sentence_accuracy": m[group.name]["sentence_accuracy"]}

    js, ss = summary(joint), summary(separate)
    score = {k: (v["intent_accuracy"] + v["slot_f1"]) / 2 for k, v in (("joint", js), ("separate", ss))}
    ratio = score["joint"] / score["separate"]
    print(f"{'':10s} {'intent acc':>10s} {'slot F1':>8s} {'sent acc':>8s}  train time  steps")
    print(f"{'joint':10s} {js['intent_accuracy']:10.4f} {js['slot_f1']:8.4f} {js['sentence_accuracy']:8.4f}"
          f"  {clock.used:8.1f}s  {trainer.step}")
    print(f"{'separate':10s} {ss['intent_accuracy']:10.4f} {ss['slot_f1']:8.4f} {ss['sentence_accuracy']:8.4f}"
          f"  {sep_cls.used + sep_tok.used:8.1f}s  {sep_cls.steps} + {sep_tok.steps}")
    print(f"same total budget: joint {budget:.0f}s; separate {budget / 2:.0f}s (intent) + "
          f"{budget / 2:.0f}s (slots), run one after the other")
    sides = {
        "joint": js | {"train_seconds": clock.used, "steps": trainer.step, "samples": trainer.step * bs,
                       "all_metrics": joint},
        "separate": ss | {"train_seconds": sep_cls.used + sep_tok.used,
                          "intent_model": {"train_seconds": sep_cls.used, "steps": sep_cls.steps,
                                           "samples": sep_cls.samples},
                          "slots_model": {"train_seconds": sep_tok.used, "steps": sep_tok.steps,
                                          "samples": sep_tok.samples},
                          "all_metrics": separate},
    }
    settings = {"repeats": 1, "budget_s_per_approach": budget, "rounds": rounds, "batch_size": bs,
                "encoder_lr": ENC_LR, "head_lr": HEAD_LR, "warmup_steps": WARMUP_STEPS,
                "schedule_steps": SCHEDULE_STEPS, "encoder": enc.name, "device": str(device),
                "threads": torch.get_num_threads(),
                "ratio": "mean(intent acc, slot F1) joint / same for separate"}
    notes = [f"Same total budget: the joint model trains {budget:.0f}s; the two separate models "
             f"{budget / 2:.0f}s each (they would run one after the other on this machine).",
             "Evaluation time excluded; both scored by mtl_lib.evaluate on SNIPS dev (700)."]
    line_note = (f"joint intent {js['intent_accuracy']:.3f} / slot F1 {js['slot_f1']:.3f} vs separate "
                 f"{ss['intent_accuracy']:.3f} / {ss['slot_f1']:.3f} after the same {budget:.0f}s")
    return C.finish(NAME, args, [C.check("joint/separate score", ratio, None)], sides, settings, notes,
                    plan.machine_start, line_note=line_note)


if __name__ == "__main__":
    main(sys.argv[1:])
