"""Tuning a shipped recipe on dev: each option's effect, measured in one run of this script.

A recipe is a task file in examples/tasks/. Each ``--option`` changes a few of its settings
(``NAME:KEY=VALUE,KEY=VALUE``; KEY is ``training.<option>``, ``<task>.<key>`` or
``encoder.pooling``) and is trained from the same pretrained encoder and seed; the dev scores
at the end and the wall time of each are printed side by side and appended to
``bench/results/recipes.json``. Only dev is ever scored (test splits are held back).

    python bench/recipes.py examples/tasks/snips.yml --option base: --option crf:slots.use_crf=true
    python bench/recipes.py examples/tasks/snips.yml --quick    # tiny encoder, a few steps
    python bench/recipes.py examples/tasks/mrpc.yml --plain-transformers

``--plain-transformers`` adds a baseline for each one-task classification group: the
``AutoModelForSequenceClassification`` of the same pretrained weights (its own tanh pooler
and pretrained pooler weights included), trained by a plain PyTorch loop on the very batches
the Trainer drew for that group, with the same learning rates and linear schedule; the library's
head next to the one transformers users know, in the same run.

Times are only comparable between options of one run on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import _common as C  # bench/ is the script's directory, so this is importable
import torch
import yaml

from mtl_lib import (
    PerLevelHierarchy,
    TfidfSGDBaseline,
    Trainer,
    TrainerConfig,
    build_experiment,
    evaluate,
    list_encoders,
    load_task_file,
)
from mtl_lib.experiment import resolve_encoder


def parse_option(text: str) -> tuple[str, dict[str, object]]:
    """``"crf:slots.use_crf=true,training.epochs=4"`` -> ("crf", {"slots.use_crf": True, ...})."""
    name, _, body = text.partition(":")
    changes = {}
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise SystemExit(f"--option {text!r}: expected KEY=VALUE with KEY like training.epochs")
        changes[key.strip()] = yaml.safe_load(value)
    return name, changes


def baselines(model, groups) -> dict[str, dict[str, float]]:
    """What a model must beat, on the same dev split: the majority class (one-label tasks) and,
    for hierarchies, TF-IDF + linear SGD over leaves."""
    out = {}
    for g in groups:
        if not g.records.get("dev"):
            continue
        for spec in g.tasks:
            tt = model.types[spec.name]
            train = [(r, tt.gold(r)) for r in g.records["train"] if tt.gold(r) is not None]
            dev = [(r, tt.gold(r)) for r in g.records["dev"] if tt.gold(r) is not None]
            if tt.label_kind != "class" or not train or not dev:
                continue
            top = Counter(gold for _, gold in train).most_common(1)[0][0]
            out[spec.name] = {"majority_accuracy": sum(gold == top for _, gold in dev) / len(dev)}
            if isinstance(top, tuple):  # a label path: the classical hierarchical baseline too
                texts = lambda rows: [{"text": " ".join(r["words"]), "path": gold} for r, gold in rows]  # noqa: E731
                tfidf = TfidfSGDBaseline(hierarchy=PerLevelHierarchy.from_paths(spec.labels)).fit(texts(train))
                out[spec.name]["tfidf_sgd_leaf_accuracy"] = tfidf.test(texts(dev))["leaf_accuracy"]
    return out


def frozen_embeddings(model, groups) -> dict[str, dict[str, float]]:
    """``{task: {"frozen_embeddings_accuracy": dev accuracy}}`` for each pair classification
    task: logistic regression on ``[u, v, |u - v|, u * v]`` (Sentence-BERT's features) of the
    *pretrained* encoder's mean-pooled embeddings of each sentence on its own, the bi-encoder use
    that all-MiniLM-L6-v2 was trained for. How much the encoder knows about pairs before fine-tuning."""
    from sklearn.linear_model import LogisticRegression

    encoder = resolve_encoder(model.encoder.name).eval()  # fresh weights, not the fine-tuned ones

    @torch.no_grad()
    def embed(sentences: list[list[str]]) -> torch.Tensor:  # (N, H)
        out = []
        for i in range(0, len(sentences), 64):
            batch = encoder.tokenizer(sentences[i:i + 64], is_split_into_words=True, truncation=True,
                                      max_length=128, padding=True, return_tensors="pt")
            hidden, _ = encoder(batch["input_ids"], batch["attention_mask"])  # (B, T, H)
            out.append(encoder.pool(hidden, batch["attention_mask"], "mean"))
        return torch.cat(out)

    def features(rows: list[dict]) -> torch.Tensor:  # (N, 4H)
        u, v = embed([r["words"] for r in rows]), embed([r["words_b"] for r in rows])
        return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)

    out = {}
    for g in groups:
        for spec in g.tasks:
            tt = model.types[spec.name]
            if tt.name != "pair_classification" or not g.records.get("dev"):
                continue
            train, dev = ([r for r in g.records[s] if tt.gold(r) is not None] for s in ("train", "dev"))
            classifier = LogisticRegression(max_iter=2000).fit(features(train).numpy(), [tt.gold(r) for r in train])
            accuracy = classifier.score(features(dev).numpy(), [tt.gold(r) for r in dev])
            out[spec.name] = {"frozen_embeddings_accuracy": float(accuracy)}
    return out


def plain_transformers(trainer: Trainer) -> dict[str, dict[str, float]]:
    """``{task: {"plain_transformers_accuracy": dev accuracy}}`` for each one-task
    classification group: ``AutoModelForSequenceClassification`` from the encoder's own weights
    directory, trained by ``_common.plain_loop`` on the very batches ``trainer`` drew for that
    group (as many steps as the group got), with the same rates, warm-up and linear decay."""
    from transformers import AutoModelForSequenceClassification

    model, config = trainer.model, trainer.config
    if config.lr_schedule != "linear":
        raise SystemExit("--plain-transformers trains with a linear schedule; the recipe's is "
                         f"{config.lr_schedule!r}")
    out = {}
    with tempfile.TemporaryDirectory(prefix="mtl_recipes_") as tmp:
        source = next((i.location for i in list_encoders() if i.name == model.encoder.name), None)
        if source is None:  # a tiny test encoder: its weights (no pooler: transformers makes one)
            model.encoder.model.save_pretrained(tmp)
            model.encoder.tokenizer.save_pretrained(tmp)
            source = tmp
        for i, g in enumerate(trainer.groups):
            if len(g.tasks) != 1 or model.types[g.tasks[0].name].name not in ("classification", "pair_classification") \
                    or not g.splits.get("dev"):
                continue
            spec, train = g.tasks[0], g.splits["train"]
            torch.manual_seed(config.seed)
            classifier = AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=spec.num_labels, local_files_only=True)
            epoch, pos = trainer.state_dict()["positions"][i]  # where the group's batches stopped
            batches = [b for e in range(epoch) for b in trainer.group_batches(i, e)] \
                + trainer.group_batches(i, epoch)[:pos]
            step = C.plain_loop(classifier, C.transformers_loss(spec.name), train, C.collator(model),
                                torch.device("cpu"), (config.encoder_lr, config.classifier_lr),
                                int(config.warmup_ratio * len(batches)), len(batches))
            step(batches)
            classifiers = C.TransformersAsMultiTask({spec.name: classifier}, model.encoder.tokenizer, model.types)
            dev = evaluate(classifiers, [g], "dev", device="cpu")
            out[spec.name] = {"plain_transformers_accuracy": dev[spec.name]["classification_accuracy"]}
    return out


def run_option(taskfile: Path, changes: dict, quick: bool, seed: int, plain: bool = False,
               frozen: bool = False) -> dict:
    tf = load_task_file(taskfile)
    training = {**tf.training, "seed": seed, "progress": False, "output_dir": None}
    pooling = None
    for key, value in changes.items():
        owner, _, field = key.partition(".")
        if owner == "training":
            training[field] = value
        elif owner == "encoder" and field == "pooling":
            pooling = value
        else:
            (spec,) = [t for t in tf.tasks if t.name == owner]
            setattr(spec, field, value)
    if quick:
        training |= {"max_steps": 4, "eval_every": 4, "batch_size": 8}
        for t in tf.tasks:
            t.max_examples = 40
    config = TrainerConfig.from_dict(training)
    model, groups = build_experiment(tf, "tiny-bert" if quick else None, max_length=config.max_length, seed=0)
    if pooling:
        model.encoder.pooling = pooling
    trainer = Trainer(model, groups, config)
    start = time.perf_counter()
    history = trainer.fit()
    seconds = time.perf_counter() - start
    evals = history.eval_rows()
    base = baselines(model, groups)
    if plain:
        for task, scores in plain_transformers(trainer).items():
            base.setdefault(task, {}).update(scores)
    if frozen:
        for task, scores in frozen_embeddings(model, groups).items():
            base.setdefault(task, {}).update(scores)
    return {"changes": changes, "steps": trainer.step, "epochs": trainer.step / trainer.steps_per_epoch,
            "train_time_s": seconds, "dev": history.last_metrics(), "baselines": base,
            "dev_curve": [{k: r[k] for k in ("step", "task", "metric", "value")} for r in evals]}


def _commit() -> str | None:
    """The repository's short commit: an option's changes are relative to the task file as it
    was then (the shipped file moves as options are kept)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("taskfile", type=Path)
    p.add_argument("--option", action="append", default=[], help="NAME:KEY=VALUE,...  (repeatable)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny encoder, 4 steps: a smoke test")
    p.add_argument("--plain-transformers", action="store_true",
                   help="also train AutoModelForSequenceClassification on each one-task classification group")
    p.add_argument("--frozen-embeddings", action="store_true",
                   help="also score logistic regression on the pretrained encoder's sentence "
                        "embeddings, for each pair classification task")
    p.add_argument("--results", type=Path, default=Path(__file__).parent / "results" / "recipes.json")
    args = p.parse_args()
    C.setup(args.threads)
    options = [parse_option(o) for o in args.option] or [("base", {})]
    rows = []
    for name, changes in options:
        row = {"recipe": args.taskfile.stem, "option": name, "seed": args.seed, **run_option(
            args.taskfile, changes, args.quick, args.seed, args.plain_transformers, args.frozen_embeddings)}
        rows.append(row)
        scores = "  ".join(f"{t}.{m} {100 * v:.2f}" for part in ("dev", "baselines")
                           for t, ms in row[part].items() for m, v in ms.items())
        print(f"{args.taskfile.stem} {name:<16} {row['train_time_s'] / 60:5.1f} min  {scores}", flush=True)
    if args.quick:
        return
    results = json.loads(args.results.read_text()) if args.results.exists() else {"runs": []}
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "threads": args.threads, "cpu_count": os.cpu_count(),
            "taskfile": C.repo_relative(args.taskfile), "commit": _commit()}
    results["runs"] += [{**meta, **r} for r in rows]
    args.results.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
