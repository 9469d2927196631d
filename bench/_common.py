"""Shared plumbing of the speed benchmarks: set-up, interleaved timing, results, the ratio line.

Every benchmark compares two (or more) *sides* measured in the same process on the same
machine. The machine's 2 cores are shared, so absolute times drift; the sides are therefore
run interleaved (A B, then B A, then A B ...: an ABBA order that also cancels a linear drift),
after untimed warm-up rounds, and the ratio reported is the median over repeats of the
ratio *within* each repeat. Each script prints its ratio line last::

    RATIO joint_vs_separate: 1.96x (target >= 1.90x) PASS

and writes ``bench/results/<name>.json`` with the sides' medians, every repeat's time, the
machine and the command line.

The training benchmarks compare two kinds of side, both built here so that they get the same
batches and optimiser: mtl_lib's ``Trainer`` continued a few steps at a time
(:func:`stepped_trainer`), and the plain PyTorch loop one would write without it
(:func:`plain_loop`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP's wait policy is left at the runtime's default (spin a little, then sleep), which is
# what users' training gets. On an idle 2-core machine it is the fast choice: with
# OMP_WAIT_POLICY=PASSIVE every parallel region pays a thread wake-up, and a MiniLM training
# step on SNIPS took 0.30 s instead of 0.22 s (measured here). On a *shared* machine spinning
# threads can wait for a descheduled partner and make ops 3-5x slower and very noisy; there,
# run the benchmarks with OMP_WAIT_POLICY=PASSIVE in the environment (it is recorded with the
# results as machine.omp_wait_policy).

import torch  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
THREADS = 2  # the benchmark machine has 2 cores; every script uses exactly 2 threads


def adamw_options(device: torch.device) -> dict:
    """The AdamW implementation the Trainer uses (the fused kernel on CPU and CUDA), for the
    plain loops the Trainer is compared with: both sides then run the same optimiser code, and
    a ratio measures what it claims to (sharing the encoder, the Trainer's own overhead), not
    fused vs per-tensor AdamW (a MiniLM AdamW step took 0.26 s per-tensor vs 0.04 s fused in
    one measurement here, on a loaded machine)."""
    return {"fused": True} if device.type in ("cpu", "cuda") else {}


def setup(threads: int = THREADS) -> torch.device:
    """Fix the thread count, silence transformers' load reports; return the device."""
    import transformers

    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark has: ``--quick``, ``--results DIR``, ``--repeats``."""
    p = argparse.ArgumentParser(description=description.strip().splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="tiny random encoder, a few steps: checks the script runs (seconds); "
                        "the numbers mean nothing")
    p.add_argument("--results", default=None,
                   help=f"directory for the result JSON (default: {RESULTS_DIR} for full runs; "
                        "--quick writes nothing unless this is given)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per side")
    return p


@dataclass
class Plan:
    """The sizes of a timed benchmark, fixed once by :func:`begin`."""

    device: torch.device
    machine_start: dict  # machine_info() before any work: the load average the run started under
    repeats: int  # timed repeats per side
    steps: int | None  # optimiser steps per repeat (training benchmarks)
    batch_size: int
    warmup: int = 1  # untimed rounds before the timed repeats

    @property
    def total_steps(self) -> int:
        """Optimiser steps a training side takes over the warm-up and timed rounds."""
        return (self.warmup + self.repeats) * self.steps

    def settings(self, **extra) -> dict:
        """A training benchmark's sizes, device and threads for the result JSON, then ``extra``."""
        return {"repeats": self.repeats, "warmup_repeats": self.warmup, "steps_per_repeat": self.steps,
                "batch_size": self.batch_size, "samples_per_repeat": self.steps * self.batch_size,
                "device": str(self.device), "threads": torch.get_num_threads()} | extra


def begin(args, steps: tuple[int | None, int | None] = (None, None),
          batch_size: tuple[int, int] = (8, 32)) -> Plan:
    """Set up (:func:`setup`), note the machine, and fix the sizes of a run.

    Sizes are ``(quick, full)`` pairs (repeats: 2 / 5), overridden by the script's
    ``--repeats``, ``--steps`` and ``--batch-size`` options where it has them.
    """
    device = setup()
    machine_start = machine_info()  # after setup(): it records the thread count

    def pick(option: str, sizes: tuple):
        return getattr(args, option, None) or sizes[0 if args.quick else 1]

    return Plan(device, machine_start, pick("repeats", (2, 5)), pick("steps", steps),
                pick("batch_size", batch_size))


# -- machine and timing --------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """What the numbers were measured on (load average included: the cores are shared)."""
    import transformers

    info = {
        "platform": platform.platform(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    if hasattr(os, "getloadavg"):
        info["loadavg_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(sides: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                device: torch.device | None = None, log: bool = True) -> dict[str, list[float]]:
    """Time each side ``repeats`` times, interleaved, after ``warmup`` untimed rounds.

    Order: round r runs the sides in the given order for even r, reversed for odd r.
    Returns ``{side: [seconds of each timed repeat]}``.
    """
    device = device or torch.device("cpu")
    names = list(sides)
    for _ in range(warmup):
        for name in names:
            sides[name]()
    sync(device)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            sides[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
        if log:
            print(f"  repeat {r + 1}/{repeats}: "
                  + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in names), flush=True)
    return times


def paired_ratio(slow: list[float], fast: list[float], slow_work: float = 1.0,
                 fast_work: float = 1.0) -> float:
    """Median over repeats of throughput(fast) / throughput(slow), pairing repeat i with i.

    ``*_work`` is what one repeat does (samples, tokens...); the ratio is of work per second.
    """
    return statistics.median((fast_work / f) / (slow_work / s) for s, f in zip(slow, fast))


def side(times: list[float], samples: float, steps: int | None = None, **extra) -> dict:
    """A side's summary: median/min/max seconds per repeat and samples per second."""
    med = statistics.median(times)
    out = {"median_s": med, "min_s": min(times), "max_s": max(times), "times_s": times,
           "samples_per_repeat": samples, "throughput_samples_per_s": samples / med}
    if steps is not None:
        out["steps_per_repeat"] = steps
        out["median_s_per_step"] = med / steps
    return out | extra


# -- results -------------------------------------------------------------------------------
def check(label: str, ratio: float | None, target: float | None, op: str = ">=",
          unit: str = "x") -> dict:
    """One ratio against its target (None = informational); ``unit`` "x" or "%" (fractions)."""
    passed = None if ratio is None or target is None else bool(ratio >= target)
    return {"label": label, "ratio": ratio, "target": target, "op": op, "passed": passed,
            "unit": unit}


def _fmt(c: dict) -> str:
    if c["ratio"] is None:
        return f"{c['label']} n/a"
    if c.get("unit") == "%":
        return f"{c['label']} {100 * c['ratio']:.1f}%" + ("" if c["target"] is None else
                                                          f" (target {c['op']} {100 * c['target']:.1f}%)")
    s = f"{c['label']} {c['ratio']:.2f}x"
    if c["target"] is None:
        return s + " (no target)"
    return s + f" (target {c['op']} {c['target']:.2f}x) {'PASS' if c['passed'] else 'MISS'}"


def ratio_line(name: str, checks: list[dict], note: str = "") -> str:
    """``RATIO <name>: <label> 1.96x (target >= 1.90x) PASS[; ...][ -- note]``"""
    body = "; ".join(_fmt(c) for c in checks)
    return f"RATIO {name}: {body}" + (f" -- {note}" if note else "")


def finish(name: str, args, checks: list[dict], sides: dict, settings: dict,
           notes: list[str] | None = None, machine_start: dict | None = None,
           line_note: str = "") -> dict:
    """Write ``<results>/<name>.json`` (unless a quick run without --results) and print the
    ratio line, last. The headline ``ratio``/``target`` are the first check's."""
    machine = machine_info()
    if machine_start and "loadavg_1_5_15" in machine_start:
        machine["loadavg_at_start"] = machine_start["loadavg_1_5_15"]
    result = {
        "name": name,
        "ratio": checks[0]["ratio"], "target": checks[0]["target"],
        "passed": checks[0]["passed"] if len(checks) == 1 else
        (None if all(c["passed"] is None for c in checks)
         else all(c["passed"] is not False for c in checks)),
        "checks": checks, "sides": sides, "repeats": settings.get("repeats"),
        "settings": settings, "notes": notes or [], "quick": bool(args.quick),
        "machine": machine,
        "command": "python " + " ".join([repo_relative(sys.argv[0])] + sys.argv[1:]),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out_dir = Path(args.results) if args.results else (None if args.quick else RESULTS_DIR)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(path)
        print(f"wrote {path}")
    print(ratio_line(name, checks, line_note), flush=True)
    return result


def repo_relative(path: str | Path) -> str:
    """``path`` relative to the repository when it is inside it (results hold no machine paths)."""
    try:
        return str(Path(path).resolve().relative_to(BENCH_DIR.parent))
    except ValueError:
        return str(path)


# -- models and data -----------------------------------------------------------------------
def encoder_and_weights(quick: bool, n_texts: int = 50):
    """The encoder (minilm, or for --quick a tiny random BERT whose tokenizer is trained on
    ``n_texts`` SNIPS utterances) and a directory holding its config, weights and tokenizer,
    for the plain ``transformers`` baselines.

    Returns (encoder, weights_dir, tempdir_or_None); keep the tempdir alive while in use.
    """
    from mtl_lib import list_encoders, load_encoder, tiny_encoder

    if not quick:
        import transformers

        enc = load_encoder("minilm")
        transformers.logging.disable_progress_bar()  # load_encoder switches it back on
        location = next(i.location for i in list_encoders() if i.name == "minilm")
        return enc, location, None
    enc = tiny_encoder("BERT", snips_texts(n_texts))
    tmp = tempfile.TemporaryDirectory(prefix="mtl_bench_")
    enc.model.save_pretrained(tmp.name)
    enc.tokenizer.save_pretrained(tmp.name)
    return enc, tmp.name, tmp


def snips_features(quick: bool, encoder, max_length: int = 128, splits=("train",),
                   max_examples: int | None = None):
    """SNIPS intent + slots encoded with ``encoder``: (model, groups)."""
    from mtl_lib import build_experiment, snips_tasks

    n = max_examples if max_examples is not None else (120 if quick else None)
    return build_experiment(snips_tasks(n), encoder, max_length=max_length, splits=splits)


def snips_texts(n: int = 300) -> list[str]:
    """A few SNIPS utterances (to train a tiny encoder's tokenizer in --quick mode)."""
    from mtl_lib import data_root

    lines = (data_root() / "snips" / "train" / "seq.in").read_text(encoding="utf-8").splitlines()
    return lines[:n]


def collator(model):
    """The ``Collator`` the Trainer builds for ``model``: its tokenizer's padding, and each
    task's label kind from the task's type."""
    from mtl_lib.data import Collator

    kinds = {name: tt.label_kind for name, tt in model.types.items()}
    return Collator.for_tokenizer(model.encoder.tokenizer, kinds)


def subset(features: list[dict], n: int, seed: int = 0) -> list[dict]:
    """``n`` features drawn without replacement (seeded), in draw order."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(features), generator=gen)[:n].tolist()
    return [features[i] for i in idx]


def bucketed_sample(features: list[dict], steps: int, batch_size: int, seed: int = 0) -> list[dict]:
    """The samples of ``steps`` full batches among the length-bucketed batches of all
    ``features`` -- so their padding is what bucketing gives over the whole training set, not
    over a small subset (which would have fewer similar lengths to group). The batches are
    taken at evenly spaced quantiles of batch width (longest length), so that a few batches
    represent the whole range of lengths rather than a lucky or unlucky random draw.

    Re-bucketing these samples as one bucket (the Trainer does so when ``steps <= 50``)
    cannot add padding: sorting and cutting into equal groups minimises the sum of the
    groups' longest lengths.
    """
    from mtl_lib.data import length_bucketed_batches

    gen = torch.Generator().manual_seed(seed)
    lengths = [len(f["input_ids"]) for f in features]
    batches = [b for b in length_bucketed_batches(lengths, batch_size, gen) if len(b) == batch_size]
    if steps > len(batches):
        raise ValueError(f"only {len(batches)} full batches of {batch_size}; asked for {steps}")
    batches.sort(key=lambda b: (max(lengths[i] for i in b), b))
    pick = [batches[int((k + 0.5) * len(batches) / steps)] for k in range(steps)]
    return [features[i] for b in pick for i in b]


def fixed_batches(features: list[dict], steps: int, batch_size: int, seed: int = 0
                  ) -> tuple[list[dict], list[list[int]]]:
    """The samples of :func:`bucketed_sample` and their ``steps`` batches (indices into them).

    At most 50 steps: the samples then form one length bucket, so a Trainer given them cuts
    the very same set of batches (in its own order) as the plain loops that get these.
    """
    from mtl_lib.data import length_bucketed_batches

    if steps > 50:  # the Trainer buckets 50 batches at a time
        raise ValueError(f"at most 50 steps share one length bucket; asked for {steps}")
    feats = bucketed_sample(features, steps, batch_size, seed)
    lengths = [len(f["input_ids"]) for f in feats]
    return feats, length_bucketed_batches(lengths, batch_size, torch.Generator().manual_seed(0))


def train_group(group, features: list[dict]):
    """A copy of ``group`` whose only split is ``train`` = ``features`` (no dev: no eval cost)."""
    from mtl_lib.data.sources import InputGroup

    return InputGroup(group.name, group.tasks, splits={"train": features})


class TransformersAsMultiTask(torch.nn.Module):
    """transformers models, one per task, behind the ``MultiTaskModel`` call signature, so that
    they are scored by the very same ``mtl_lib.evaluate`` code as the library's model.

    ``models``: ``{task: *ForSequenceClassification / *ForTokenClassification}``; ``types``:
    ``{task: TaskType}``, how evaluate reads each task's logits.
    """

    def __init__(self, models: dict, tokenizer, types: dict | None = None) -> None:
        super().__init__()
        self.models = torch.nn.ModuleDict(models)
        self.encoder = SimpleNamespace(tokenizer=tokenizer)
        self.types = types or {}

    def forward(self, input_ids, attention_mask, token_type_ids=None, tasks=None):
        return {task: m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits
                for task, m in self.models.items()}


# -- the two kinds of training side --------------------------------------------------------
class _StopAfter:
    """Trainer callback: stop ``fit`` once ``trainer.step`` reaches ``stop_at``."""

    def __init__(self) -> None:
        self.stop_at = 0

    def on_step_end(self, trainer, record) -> None:
        if trainer.step >= self.stop_at:
            trainer.should_stop = True


def stepped_trainer(model, groups, steps: int, **config):
    """A ``Trainer`` (no progress bar) and a side that continues it for ``steps`` optimiser
    steps per call (one ``fit``). ``config`` is the ``TrainerConfig``; its ``max_steps``
    must cover every call, since the learning-rate schedule spans it.

    Returns (trainer, side).
    """
    from mtl_lib import Trainer, TrainerConfig

    stopper = _StopAfter()
    trainer = Trainer(model, groups, TrainerConfig(progress=False, **config), callbacks=[stopper])

    def run() -> None:
        stopper.stop_at = trainer.step + steps
        trainer.fit()
    return trainer, run


def linear_schedule(optimizer, warmup: int, total: int):
    """The Trainer's schedule (linear warm-up to 1, linear decay to 0) for plain loops."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _inputs(batch: dict, device: torch.device) -> tuple:
    """(input_ids, attention_mask, token_type_ids or None) of a collated batch, on ``device``."""
    type_ids = batch.get("token_type_ids")
    return (batch["input_ids"].to(device), batch["attention_mask"].to(device),
            type_ids.to(device) if type_ids is not None else None)


def multitask_loss(model, batch: dict, device: torch.device) -> torch.Tensor:
    """A ``MultiTaskModel``'s task losses on ``batch``, summed: what a notebook's hand loop
    writes (no sampler, weighting, NaN checks or history)."""
    logits = model(*_inputs(batch, device))  # {task: (B, C) or (B, T, C)}
    labels = {t: v.to(device) for t, v in batch["labels"].items()}
    return sum(model.compute_losses(logits, labels).values())


def transformers_loss(task: str) -> Callable:
    """The loss of a ``transformers`` ``*ForSequenceClassification`` /
    ``*ForTokenClassification`` model on ``task``'s labels (the model computes it)."""
    def loss(model, batch: dict, device: torch.device) -> torch.Tensor:
        input_ids, attention_mask, token_type_ids = _inputs(batch, device)
        return model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                     labels=batch["labels"][task].to(device)).loss
    return loss


def _encoder_and_head_params(model) -> tuple[list, list]:
    if hasattr(model, "parameter_groups"):  # a MultiTaskModel knows its split
        return model.parameter_groups()
    prefix = model.base_model_prefix + "."  # a transformers model: its base model vs the classifier
    named = list(model.named_parameters())
    return [p for n, p in named if n.startswith(prefix)], [p for n, p in named if not n.startswith(prefix)]


def plain_loop(model, loss: Callable, features: list[dict], collate, device: torch.device,
               lrs: tuple[float, float], warmup: int, total: int) -> Callable[[Iterable[list[int]]], None]:
    """The plain PyTorch training loop the Trainer is compared with, as one would write it.

    The Trainer's algorithm without its machinery: AdamW with an encoder and a head parameter
    group, weight decay 0.01 and the Trainer's fused kernel (:func:`adamw_options`), gradient
    clipping at 1.0 and the Trainer's linear schedule.

    Parameters
    ----------
    model : MultiTaskModel or a transformers ``*For*Classification`` model
        Moved to ``device``; its encoder (the base model) and head get the two ``lrs``.
    loss : callable
        ``loss(model, batch, device) -> 0-d tensor``: :func:`multitask_loss` or
        :func:`transformers_loss`.
    features : list of dict
        Encoded examples; batches are lists of indices into them.
    collate : Collator
    lrs : (float, float)
        Encoder and head learning rates.
    warmup, total : int
        Schedule steps: linear warm-up to the full rates, then linear decay to 0 at ``total``.

    Returns
    -------
    callable
        ``train(batches)``: one optimiser step per batch; the optimiser state and the schedule
        carry on from call to call.
    """
    model.to(device)
    enc, head = _encoder_and_head_params(model)
    opt = torch.optim.AdamW([{"params": enc, "lr": lrs[0]}, {"params": head, "lr": lrs[1]}],
                            weight_decay=0.01, **adamw_options(device))
    sched = linear_schedule(opt, warmup, total)

    def train(batches: Iterable[list[int]]) -> None:
        model.train()
        for idx in batches:
            loss(model, collate([features[i] for i in idx]), device).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    return train
