"""Multi-task inference: k heads on one encoder pass vs one encoder pass per task.

A ``MultiTaskModel`` (MiniLM-L6) with k = 2, 3, 4 heads: SNIPS ``intent`` (7 classes) and
``slots`` (72 tags), plus for k >= 3 an ``entity_types`` multilabel head (which slot types
occur) and for k = 4 a ``domain`` classification head. The extra heads are untrained: only
speed is measured here. Input: SNIPS dev utterances in file order, batch 32, eval mode,
``torch.inference_mode``, pre-tokenised and collated (tokenising is the same on both sides).

* ``shared``: ``model(..., tasks=[all k])`` -- one encoder pass feeds the k heads;
* ``per_task``: ``model(..., tasks=[t])`` for each t -- k encoder passes, as k single-task
  models would do.

Ratio = time(per_task) / time(shared); target >= 0.9 k (DESIGN §9). Also reported without a
target: the end-to-end ``Predictor.predict`` (tokenising, decoding to labels and spans) for
intent + slots vs two single-task Predictors.

    nice -n 5 .venv/bin/python bench/inference.py          # ~1 min on 2 free cores
    .venv/bin/python bench/inference.py --quick            # tiny encoder, seconds
"""

from __future__ import annotations

import sys

import _common as C
import torch

NAME = "inference"
KS = (2, 3, 4)


def main(argv: list[str] | None = None) -> dict:
    p = C.parser(__doc__)
    p.add_argument("--examples", type=int, default=None, help="dev utterances per repeat (default 320)")
    args = p.parse_args(argv)
    plan = C.begin(args, batch_size=(32, 32))
    device, repeats, bs, warmup = plan.device, plan.repeats, plan.batch_size, plan.warmup
    n = args.examples or (16 if args.quick else 320)

    from mtl_lib import MultiTaskModel, Predictor, make_head

    enc = C.encoder_and_weights(args.quick)[0]
    model, groups = C.snips_features(args.quick, enc, splits=("dev",),
                                     max_examples=n * 5 if args.quick else None)
    group = groups[0]
    feats = group.splits["dev"][:n]
    texts = [" ".join(r["words"]) for r in group.records["dev"][:n]]
    n = len(feats)
    slot_types = sorted({t[2:] for t in group.tasks[1].labels if t[:2] in ("B-", "I-")})
    torch.manual_seed(0)
    heads = dict(model.heads)
    heads["entity_types"] = make_head("multilabel", enc.hidden_size, len(slot_types))
    heads["domain"] = make_head("classification", enc.hidden_size, 5)
    full = MultiTaskModel(enc, heads).to(device).eval()
    names = list(heads)
    collate = C.collator(model)
    batches = [{k: v.to(device) for k, v in collate(feats[i:i + bs]).items() if k != "labels"}
               for i in range(0, n, bs)]
    print(f"{NAME}: {enc.name}, {n} SNIPS dev utterances, batch {bs}, heads {names}, "
          f"{warmup} warm-up + {repeats} timed repeats, {torch.get_num_threads()} threads, {device}",
          flush=True)

    def shared(tasks):
        def run():
            with torch.inference_mode():
                for b in batches:
                    full(b["input_ids"], b["attention_mask"], b.get("token_type_ids"), tasks=tasks)
        return run

    def per_task(tasks):
        def run():
            with torch.inference_mode():
                for t in tasks:
                    for b in batches:
                        full(b["input_ids"], b["attention_mask"], b.get("token_type_ids"), tasks=[t])
        return run

    sides = {}
    for k in KS:
        sides[f"shared_k{k}"] = shared(names[:k])
        sides[f"per_task_k{k}"] = per_task(names[:k])
    # end to end, SNIPS intent + slots (the two trained-style heads with task specs)
    spec = {t.name: t for t in group.tasks}
    two = Predictor(MultiTaskModel(enc, {t: model.heads[t] for t in spec}, spec.values()).to(device))
    singles = [Predictor(MultiTaskModel(enc, {t: model.heads[t]}, [spec[t]]).to(device)) for t in spec]
    sides["predictor_shared_k2"] = lambda: two.predict(texts)
    sides["predictor_per_task_k2"] = lambda: [s.predict(texts) for s in singles]

    times = C.interleaved(sides, repeats, warmup, device)
    out_sides = {k: C.side(v, n) for k, v in times.items()}
    checks = []
    for k in KS:
        r = C.paired_ratio(times[f"per_task_k{k}"], times[f"shared_k{k}"])
        checks.append(C.check(f"k={k}", r, round(0.9 * k, 2)))
        print(f"k={k}: shared {out_sides[f'shared_k{k}']['median_s']:.3f}s, per task "
              f"{out_sides[f'per_task_k{k}']['median_s']:.3f}s per {n} utterances -> {r:.2f}x")
    pr = C.paired_ratio(times["predictor_per_task_k2"], times["predictor_shared_k2"])
    print(f"Predictor end to end, intent + slots: shared "
          f"{out_sides['predictor_shared_k2']['median_s']:.3f}s, two predictors "
          f"{out_sides['predictor_per_task_k2']['median_s']:.3f}s -> {pr:.2f}x (no target)")
    settings = {"repeats": repeats, "warmup_repeats": warmup, "examples_per_repeat": n,
                "batch_size": bs, "heads": names, "encoder": enc.name, "device": str(device),
                "threads": torch.get_num_threads(), "order": "sides alternate forward / reversed",
                "ratio": "median over repeats of time(one pass per task) / time(one shared pass)"}
    notes = ["Model level: pre-collated batches, heads untrained (speed only).",
             f"Predictor end-to-end (tokenise + forward + decode), intent + slots: {pr:.2f}x "
             "(no target; decoding per task is not shared)."]
    checks.append(C.check("predictor_k2", pr, None))
    return C.finish(NAME, args, checks, out_sides, settings, notes, plan.machine_start)


if __name__ == "__main__":
    main(sys.argv[1:])
