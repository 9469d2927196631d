"""Hierarchical classification: DB_Linear vs the TF-IDF + SGD baseline, in one run.

Both models predict a leaf and expand it to the full path, so they are compared on exactly
the same footing: per-level accuracy, leaf macro-F1, hierarchical F1 and training time, on

* TREC (2 levels, 6 coarse / 50 fine): 10% of ``train_5500.label`` held out as dev
  (shuffled with a fixed seed), the other 90% for training;
* amazon_hier (3 levels, 6 / 62 / 300+): ``train.csv`` for training, ``dev.csv`` for
  scoring; the text is ``Title. Text``.

The label tree of each data set is built from the train *and* dev label paths: the set of
categories is known in advance, and 7 amazon dev rows have a leaf that no training row has
(no model can get those right, but they must not crash the scoring). No dev text is used.

Usage (from the repository root; about an hour on a busy 2-core machine)::

    nice -n 10 .venv/bin/python bench/hierarchical.py
    .venv/bin/python bench/hierarchical.py --smoke     # tiny encoder, small slices: seconds

Writes ``bench/results/hierarchical.json`` (``--smoke`` writes ``hierarchical_smoke.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from mtl_lib import DB_Linear, PerLevelHierarchy, TfidfSGDBaseline, data_root, tiny_encoder  # noqa: E402
from mtl_lib.data import read_hierarchical_table, read_trec  # noqa: E402

SPLIT_SEED = 0  # TREC dev split
# DB_Linear settings per data set. Short budget on purpose: 2 shared CPU cores.
DB_CONFIG = {
    "trec": {
        "encoder_lr": 1e-4,  # MiniLM is small; 1e-4 moves it enough in a few epochs
        "classifier_lr": 3e-3,  # the 50-leaf layer starts from scratch
        "dropout": 0.1,
        "pooling": "mean",  # all-MiniLM-L6-v2 was trained as a mean-pooled sentence encoder
        "max_length": 64,  # TREC questions are ~10 words; nothing is cut at 64
        "batch_size": 32,
        "epochs": 3,
    },
    "amazon_hier": {
        "encoder_lr": 1e-4,
        "classifier_lr": 3e-3,
        "dropout": 0.1,
        "pooling": "mean",
        "max_length": 128,  # reviews average ~75 tokens; 1 in 6 is truncated at 128
        "batch_size": 16,  # twice the updates per epoch for the 300+ leaves, same CPU cost
        "epochs": 2,  # ~75-token reviews cost ~5x a TREC question: 2 epochs keep it modest
    },
}


def load_trec(root: Path) -> tuple[list[dict], list[dict]]:
    records = read_trec(root / "trec" / "train_5500.label")
    order = list(range(len(records)))
    random.Random(SPLIT_SEED).shuffle(order)
    n_dev = len(records) // 10
    return [records[i] for i in order[n_dev:]], [records[i] for i in order[:n_dev]]


def load_amazon(root: Path) -> tuple[list[dict], list[dict]]:
    cols = (["Title", "Text"], ["Cat1", "Cat2", "Cat3"])
    folder = root / "amazon_hier"
    return (read_hierarchical_table(folder / "train.csv", *cols),
            read_hierarchical_table(folder / "dev.csv", *cols))


def run_dataset(name: str, train: list[dict], dev: list[dict], smoke: bool) -> list[dict]:
    hierarchy = PerLevelHierarchy.from_paths([r["path"] for r in train + dev])
    print(f"\n== {name}: {len(train)} train / {len(dev)} dev, {hierarchy!r}", flush=True)
    rows = []

    baseline = TfidfSGDBaseline(hierarchy=hierarchy)
    t0 = time.perf_counter()
    baseline.fit(train)
    rows.append({"dataset": name, "model": "Tfidf_LSGD", "train_time_s": time.perf_counter() - t0,
                 "config": baseline.config, **baseline.test(dev)})

    config = dict(DB_CONFIG[name])
    encoder = None
    if smoke:
        config.update(epochs=1, max_length=32)
        encoder = tiny_encoder("BERT", texts=[r["text"] for r in train])
    torch.manual_seed(0)
    model = DB_Linear(hierarchy, config, encoder=encoder)
    t0 = time.perf_counter()
    history = model.fit(train)  # no dev during fit: the time is training only
    train_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = model.test(dev, progress=True)
    rows.append({"dataset": name, "model": f"DB_Linear ({model.config['encoder']})",
                 "train_time_s": train_time, "dev_predict_time_s": time.perf_counter() - t0,
                 "config": model.config, "history": history, **metrics})
    return rows


def table(rows: list[dict]) -> str:
    head = (f"{'dataset':<12} {'model':<22} {'L1 acc':>7} {'L2 acc':>7} {'L3 acc':>7} "
            f"{'leaf mF1':>8} {'hier F1':>8} {'train s':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        accs = [r.get(f"level{k}_accuracy") for k in (1, 2, 3)]
        cells = " ".join(f"{'-':>7}" if a is None else f"{100 * a:>7.2f}" for a in accs)
        lines.append(f"{r['dataset']:<12} {r['model']:<22} {cells} "
                     f"{100 * r['leaf_macro_f1']:>8.2f} {100 * r['hierarchical_f1']:>8.2f} "
                     f"{r['train_time_s']:>8.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny encoder, 1 epoch, 300/100-row slices (checks the script)")
    parser.add_argument("--datasets", nargs="+", default=["trec", "amazon_hier"],
                        choices=["trec", "amazon_hier"])
    # One thread by default: on a machine shared by several busy processes, two torch threads
    # spend most of their time waiting for each other (measured here: a MiniLM training step
    # took 4-7x longer with 2 threads than with 1 while the load average was ~9). On an idle
    # machine pass --threads 2.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", default=str(Path(__file__).parent / "results"),
                        help="directory for the result JSON (default bench/results)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    root = data_root()
    loaders = {"trec": load_trec, "amazon_hier": load_amazon}
    rows = []
    start = time.perf_counter()
    for name in args.datasets:
        train, dev = loaders[name](root)
        if args.smoke:
            train, dev = train[:300], dev[:100]
        rows.extend(run_dataset(name, train, dev, args.smoke))
    print("\n" + table(rows))
    print("(accuracies and F1 in %, on dev; leaf accuracy = the last level's accuracy; "
          "train s = wall-clock training time)")

    out = Path(args.results) / ("hierarchical_smoke.json" if args.smoke else "hierarchical.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__,
            "threads": args.threads, "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "trec_dev_split_seed": SPLIT_SEED,
            "total_time_s": time.perf_counter() - start}
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
