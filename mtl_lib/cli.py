"""The ``mtl-lib`` command: demo, train, evaluate, predict, compare, encoders.

Every error a user can cause (bad file, bad option, missing weights, broken checkpoint) ends
in one line on stderr and exit status 2 — no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from .tasks.spec import DECODINGS

__all__ = ["main", "build_parser"]


class UserError(Exception):
    """An error caused by the command line or its inputs; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (plus where to look), like every other error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _main_process() -> bool:
    """False on the other processes of a torchrun launch: only rank 0 writes the run directory."""
    return os.environ.get("RANK", "0") == "0"


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help="auto (cuda, then mps, then cpu; the default), cpu, cuda, cuda:N or mps")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mtl-lib", description="Multi-task learning with a shared "
                                "transformer encoder: train, evaluate and predict.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="train the default encoder on SNIPS intent + slots, save plots "
                       "and a checkpoint")
    d.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    d.add_argument("--encoder", default=None, help="encoder name or path (default: minilm)")
    d.add_argument("--epochs", type=float, default=1.0, help="training epochs (default: 1)")
    d.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    d.add_argument("--max-examples", type=int, default=None, help="use a subset of SNIPS (quick runs)")
    d.add_argument("--overwrite", action="store_true", help="replace the run already in OUT (its files only)")
    _add_device(d)

    t = sub.add_parser("train", help="train on the tasks of a YAML task file")
    t.add_argument("taskfile", help="YAML task file")
    t.add_argument("--out", required=True, help="run directory for checkpoints, history and plots")
    t.add_argument("--encoder", default=None, help="override the task file's encoder")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last")
    t.add_argument("--overwrite", action="store_true",
                   help="replace the run already in OUT (only files mtl-lib wrote are removed)")
    _add_device(t)
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training option, e.g. --set epochs=1 --set sampler=uniform")

    e = sub.add_parser("evaluate", help="score a checkpoint on a data split")
    e.add_argument("checkpoint", help="checkpoint or run directory")
    e.add_argument("--split", default="dev", choices=["train", "dev", "test"])
    e.add_argument("--data", action="append", default=[], metavar="[TASK=]PATH",
                   help="score on this file or folder instead of the run's own data, read in the task's "
                        "format (JointBERT folder, CoNLL, CSV/TSV/JSONL, TREC); TASK= for one task; repeatable")
    e.add_argument("--json", action="store_true", help="print {task: {metric: value}} as JSON")
    e.add_argument("--tag-decoding", default=None, choices=DECODINGS,
                   help="how tagging tasks read tags (default: the checkpoint's setting, normally bio)")
    e.add_argument("--errors", type=int, default=0, metavar="N",
                   help="also print each task's N worst errors (highest loss) and its errors by kind")
    _add_device(e)

    r = sub.add_parser("predict", help="predict every task for lines of text (JSONL out)")
    r.add_argument("checkpoint", help="checkpoint or run directory")
    r.add_argument("--input", "-i", default="-",
                   help="one text per line, or JSONL lines {\"text\": ..., \"text_pair\": ...} for "
                        "sentence-pair tasks (default: stdin)")
    r.add_argument("--output", "-o", default="-", help="JSONL output file (default: stdout)")
    _add_device(r)

    c = sub.add_parser("compare", help="compare training runs: each task metric, best and last, "
                       "with the difference to the first run")
    c.add_argument("runs", nargs="+", metavar="RUN", help="run directories (mtl-lib train --out); "
                   "the first is the baseline")
    c.add_argument("--png", default=None, metavar="FILE",
                   help="also save a figure of their loss and dev-score curves on one epoch axis")

    sub.add_parser("encoders", help="list the encoder registry and what is available here")
    return p


def _parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


def cmd_encoders(args) -> int:
    from .models.registry import known_good_encoders, list_encoders

    rows = list_encoders()
    print(f"{'family':<11} {'config name':<22} {'default':<8} {'pooling':<8} available here")
    for r in rows:
        where = f"yes  ({r.location})" if r.available else "no"
        print(f"{r.family:<11} {r.name:<22} {'*' if r.is_family_default else '':<8} {r.pooling:<8} {where}")
    print("\nKnown good beyond the table (any AutoModel with a fast tokenizer works: a hub id in the "
          "Hugging Face cache or a directory):")
    for r in known_good_encoders():
        print(f"{r.family:<11} {r.name:<40} {r.pooling:<6} {'here' if r.available else 'not here':<9} {r.note}")
    return 0


def _print_metrics(metrics: dict[str, dict[str, float]]) -> None:
    print(f"{'task':<22} {'metric':<28} {'value':>8}")
    for task, ms in metrics.items():
        for m, v in ms.items():
            print(f"{task:<22} {m:<28} {100 * v:>7.2f}%")


def _train(model, groups, config, out: Path, lock, resume: bool = False):
    """Train, then write the run's history and plots; ``lock`` holds OUT for this process."""
    from .training.trainer import Trainer
    from .ui.plots import plot_losses, plot_metrics, save_figure

    trainer = Trainer(model, groups, config)
    if trainer.dist.is_main:
        lock.acquire()  # OUT may not have existed when the command started
    t0 = time.time()
    history = trainer.fit(resume_from=out / "last" if resume else None)
    minutes = (time.time() - t0) / 60
    if not trainer.dist.is_main:  # under torchrun only rank 0 writes and reports
        return trainer, history, minutes
    history.to_json(out / "history.json")
    save_figure(plot_losses(history), out / "loss.png")
    if history.eval_rows():
        save_figure(plot_metrics(history), out / "metrics.png")
    return trainer, history, minutes


def cmd_demo(args) -> int:
    from .training.run_dir import check_run_directory, run_directory

    out = Path(args.out)
    # writable, and not in use: checked (and locked) first, before the heavy imports and the data
    with run_directory(out, main=_main_process()) as lock:
        from .experiment import build_experiment, snips_tasks
        from .models.devices import resolve_device
        from .training.config import TrainerConfig

        resolve_device(args.device or "auto")  # is that device here?
        print(f"mtl-lib demo: SNIPS intent + slots on one shared encoder ({args.encoder or 'minilm'})")
        model, groups = build_experiment(snips_tasks(args.max_examples), args.encoder)
        n_train = len(groups[0].splits["train"])
        print(f"{n_train} training utterances, {len(groups[0].splits['dev'])} dev; "
              f"encoder {model.encoder.name}: {model.encoder.num_parameters() / 1e6:.1f}M parameters")
        from .tasks.examples import example_task_files
        from .tasks.task_file import read_task_file

        recipe = read_task_file(example_task_files()["snips"]).training  # the rates tuned on SNIPS dev
        config = TrainerConfig(epochs=args.epochs, max_steps=args.max_steps, encoder_lr=recipe["encoder_lr"],
                               classifier_lr=recipe["classifier_lr"], batch_size=32, output_dir=str(out),
                               device=args.device or "auto",
                               eval_every=max(1, n_train // 32 // 4))  # ~4 dev points per epoch: a curve
        if _main_process():
            check_run_directory(out, overwrite=args.overwrite, can_resume=False)
        trainer, history, minutes = _train(model, groups, config, out, lock)
    if not trainer.dist.is_main:
        return 0
    metrics = history.last_metrics()
    print(f"\ntrained {trainer.step} steps in {minutes:.1f} min; dev metrics:")
    _print_metrics(metrics)
    print(f"\nsaved: {out / 'best'} (checkpoint), {out / 'loss.png'}, {out / 'metrics.png'}")
    print(f"next:  mtl-lib predict {out} <<< 'play some jazz by miles davis on spotify'")
    return 0


def cmd_train(args) -> int:
    from .training.run_dir import check_run_directory, run_directory

    if args.resume and args.overwrite:
        raise UserError("--resume and --overwrite contradict each other: continue the run in OUT, or replace it")
    out = Path(args.out)
    # writable, and not in use: checked (and locked) first, before the heavy imports and the data
    with run_directory(out, main=_main_process()) as lock:
        from .experiment import build_experiment, load_task_file
        from .models.devices import resolve_device
        from .training.config import TrainerConfig
        from .training.loggers import check_loggers

        tf = load_task_file(args.taskfile)
        options = dict(tf.training)
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise UserError(f"--set expects KEY=VALUE, got {item!r}")
            options[key.strip()] = _parse_value(value)
        options["output_dir"] = str(out)
        if args.device:
            options["device"] = args.device
        try:
            config = TrainerConfig.from_dict(options)
        except (ValueError, TypeError) as err:
            raise UserError(f"{args.taskfile}: {err}") from None
        resolve_device(config.device)  # before the data: is that device here, are the loggers installed?
        check_loggers(config.report_to)
        model, groups = build_experiment(tf, args.encoder, max_length=config.max_length)
        if _main_process():  # may this run write here? (after the inputs: their errors come first)
            check_run_directory(out, resume=args.resume, overwrite=args.overwrite)
        trainer, history, minutes = _train(model, groups, config, out, lock, resume=args.resume)
    if not trainer.dist.is_main:
        return 0
    print(f"trained {trainer.step} steps in {minutes:.1f} min; last dev metrics:")
    _print_metrics(history.last_metrics())
    return 0


def cmd_evaluate(args) -> int:
    from .data.sources import read_from
    from .evaluation.evaluate import evaluate
    from .experiment import build_groups
    from .models.devices import resolve_device
    from .models.multitask import load_model

    if args.errors < 0:
        raise UserError(f"--errors {args.errors}: expected a number of examples >= 0")
    device = resolve_device(args.device or "auto")
    model = load_model(args.checkpoint)
    tasks = list(model.tasks.values())
    if args.tag_decoding:
        for t in tasks:
            t.tag_decoding = args.tag_decoding
    for task, path in _data_options(args.data, [t.name for t in tasks]):
        for t in tasks:
            if task in (None, t.name):
                read_from(t, path, args.split)
    max_length = int(model.training_config.get("max_length") or 128)  # as it was trained
    groups = build_groups(tasks, model.encoder.tokenizer, max_length, splits=(args.split,))
    if not any(g.splits.get(args.split) for g in groups):
        raise UserError(f"no {args.split!r} split found for the checkpoint's tasks")
    metrics = evaluate(model.to(device), groups, args.split)
    records = _error_records(model, groups, args) if args.errors else None
    if args.json:
        print(json.dumps(metrics if records is None else {"metrics": metrics, "errors": records}, indent=2))
    else:
        _print_metrics(metrics)
        if records is not None:
            from .evaluation.errors import format_errors

            print("\n" + format_errors(records, args.errors))
    return 0


def _error_records(model, groups, args) -> list[dict]:
    """``--errors N``: every example's record (text), or the N worst per task (JSON)."""
    from .evaluation.errors import error_records, worst

    records = error_records(model, groups, args.split)
    if not args.json:
        return records
    # JSON has no infinity: the loss of a gold label the model does not know becomes null
    return [r | {"loss": None if r["loss"] == float("inf") else r["loss"]}
            for r in worst(records, args.errors)]


def _data_options(values: list[str], tasks: list[str]) -> list[tuple[str | None, str]]:
    """``--data`` values as (task or None for all, path); ``TASK=`` must name a task of the run."""
    out = []
    for value in values:
        task, sep, path = value.partition("=")
        if sep and task in tasks:
            out.append((task, path))
        elif sep and not Path(value).exists():
            raise UserError(f"--data {value}: {task!r} is not a task of this checkpoint "
                            f"(its tasks: {', '.join(tasks)})")
        else:
            out.append((None, value))
    return out


def _predict_inputs(text: str, name: str) -> tuple[list[str], list[str | None]]:
    """Texts and second sentences from ``--input``: JSONL when its first line is a JSON object
    (``text``, optional ``text_pair``; blank lines skipped), else one text per line."""
    # one input per "\n" line: str.splitlines would also split inside a line at \x0c, \x1c, \u2028...
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    try:
        jsonl = bool(lines) and lines[0].lstrip().startswith("{") and isinstance(json.loads(lines[0]), dict)
    except ValueError:
        jsonl = False
    if not jsonl:
        return lines, [None] * len(lines)
    texts, pairs = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise UserError(f"{name}:{number}: not a JSON object ({err}); the input is read as JSONL "
                            "because its first line is one") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise UserError(f"{name}:{number}: expected an object with a string \"text\" "
                            "(and optionally \"text_pair\")")
        pair = record.get("text_pair")
        if pair is not None and not isinstance(pair, str):
            raise UserError(f"{name}:{number}: \"text_pair\" must be a string, got {type(pair).__name__}")
        texts.append(record["text"])
        pairs.append(pair)
    return texts, pairs


def cmd_predict(args) -> int:
    from .evaluation.predict import Predictor

    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device or "auto")
    name = "standard input" if args.input == "-" else args.input
    try:
        if args.input == "-":  # bytes, so that a bad encoding is our error, not a traceback
            stream = getattr(sys.stdin, "buffer", sys.stdin)
            data = stream.read()
        else:
            data = Path(args.input).read_bytes()
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{name}: cannot read ({err})") from None
    texts, pairs = _predict_inputs(text, name)
    pair_tasks = [n for n, tt in predictor.model.types.items() if tt.reads_pairs]
    unpaired = [i for i, p in enumerate(pairs) if p is None]
    if pair_tasks and unpaired:
        if len(pair_tasks) == len(predictor.model.types):
            raise UserError(f"{name}: input {unpaired[0] + 1} has no second sentence, and every task of this "
                            f"checkpoint ({', '.join(pair_tasks)}) reads sentence pairs; give JSONL lines "
                            '{"text": "...", "text_pair": "..."}')
        print(f"mtl-lib predict: note: {len(unpaired)} input(s) have no \"text_pair\": the sentence-pair "
              f"task(s) {', '.join(pair_tasks)} are left out of their records", file=sys.stderr)
    results = predictor.predict(texts, text_pairs=pairs) if texts else []
    out = []
    for number, r in enumerate(results, 1):
        try:  # JSON has no NaN: never write a line other programs cannot read
            out.append(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n")
        except ValueError:
            raise UserError(f"{name}: input {number}: the prediction holds NaN or infinite scores") from None
    if args.output == "-":
        sys.stdout.write("".join(out))
    else:
        Path(args.output).write_text("".join(out), encoding="utf-8")
    return 0


def cmd_compare(args) -> int:
    from .training.comparison import comparison_table, format_comparison, read_run

    runs = [read_run(path) for path in args.runs]
    print(format_comparison(comparison_table(runs), runs))
    if args.png:
        from .ui.compare import plot_run_comparison
        from .ui.plots import save_figure

        print(f"\nsaved: {save_figure(plot_run_comparison(runs), args.png)}")
    return 0


COMMANDS = {"demo": cmd_demo, "train": cmd_train, "evaluate": cmd_evaluate,
            "predict": cmd_predict, "compare": cmd_compare, "encoders": cmd_encoders}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    from .data.files import DataFormatError
    from .models.encoders import EncoderNotAvailable
    from .models.safe_files import CheckpointError
    from .tasks.spec import TaskFileError
    from .training.trainer import TrainingDiverged

    user_errors = (UserError, CheckpointError, DataFormatError, EncoderNotAvailable, TaskFileError,
                   TrainingDiverged, OSError, ValueError)
    def one_line(text: object) -> str:  # messages written as several lines (EncoderNotAvailable's remedies)
        return " ".join(part.strip() for part in str(text).splitlines() if part.strip())

    def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
        # a user reads "what is wrong with my data", not the library line that noticed it
        print(f"mtl-lib {args.command}: warning: {one_line(message)}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line_warning
            return COMMANDS[args.command](args)
    except user_errors as err:
        print(f"mtl-lib {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mtl-lib {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
