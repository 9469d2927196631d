"""Reliability: every bad input gives a specific error, one clear CLI line, and loses nothing.

Each case below builds one bad input (data file, task file, training option, encoder name,
checkpoint directory or command-line argument) and is checked three ways:

* the library API raises the specific exception (``DataFormatError``, ``TaskFileError``,
  ``CheckpointError``, ``EncoderNotAvailable`` or ``ValueError``) whose message names the
  file/line or the key;
* ``mtl_lib.cli.main`` (in this process) exits non-zero with exactly one line on stderr,
  no Python warning and no traceback, and leaves the existing run directory / checkpoint
  byte-identical (files hashed before and after);
* as a separate process, the command does the same: three representative cases run
  ``python -m mtl_lib.cli`` in a fresh interpreter (fast suite); under ``-m slow`` every case
  runs in its own process forked from one interpreter that has already imported mtl_lib
  (``tests/scripts/reliability_cli_runner.py``, which runs the module as ``__main__`` with
  ``runpy`` like ``python -m``), since a fresh interpreter costs ~5 s of imports per case.

A hypothesis test throws random task-file mappings at ``load_task_file``: they load (with
well-typed fields) or raise ``TaskFileError``, nothing else.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtl_lib import (
    CheckpointError,
    DataFormatError,
    EncoderNotAvailable,
    TaskFileError,
    TaskSpec,
    TrainerConfig,
    build_experiment,
    build_groups,
    list_encoders,
    load_encoder,
    load_model,
    load_task_file,
    tiny_encoder,
)
from mtl_lib.cli import main
from mtl_lib.evaluation.metrics import METRICS
from mtl_lib.models.losses import LOSSES
from mtl_lib.task_types import TASK_TYPES
from mtl_lib.tasks.spec import FORMATS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- a small world

TRAIN = [  # (words, slot tags, intent)
    ("play jazz music", "O B-genre O", "PlayMusic"),
    ("book a table for two", "O O O O B-num", "BookRestaurant"),
    ("play some rock", "O O B-genre", "PlayMusic"),
    ("add this song to my list", "O O O O O B-obj", "AddToPlaylist"),
    ("book a room in paris", "O O O O B-city", "BookRestaurant"),
    ("play the blues", "O O B-genre", "PlayMusic"),
    ("add a track to rock", "O O O O B-genre", "AddToPlaylist"),
    ("book two seats", "O B-num O", "BookRestaurant"),
]
INTENTS = "UNK\nPlayMusic\nBookRestaurant\nAddToPlaylist\n"
SLOTS = "PAD\nUNK\nO\nB-genre\nB-num\nB-city\nB-obj\n"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def write_jointbert(root: Path, rows=TRAIN, newline: str = "\n") -> Path:
    for split, part in (("train", rows), ("dev", rows[:4])):
        write(root / split / "seq.in", "".join(w + newline for w, _, _ in part))
        write(root / split / "seq.out", "".join(t + newline for _, t, _ in part))
        write(root / split / "label", "".join(i + newline for _, _, i in part))
    write(root / "intent_label.txt", INTENTS.replace("\n", newline))
    write(root / "slot_label.txt", SLOTS.replace("\n", newline))
    return root


def jointbert_tasks(jb: Path, encoder: Path | str) -> dict:
    common = {"format": "jointbert", "path": str(jb), "config_name": str(encoder)}
    return {
        "intent": {"task_type": "SingleSenClassification", "label_field": "intent",
                   "label_map_or_file": str(jb / "intent_label.txt"), **common},
        "slots": {"task_type": "NER", "label_field": "slots",
                  "label_map_or_file": str(jb / "slot_label.txt"), **common},
        "training": {"max_steps": 2, "batch_size": 4, "progress": False, "eval_every": 1},
    }


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file (and every directory, as "dir") under root."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@dataclass
class World:
    root: Path
    encoder: Path  # a tiny BERT saved as a local encoder directory (fast to load)
    jb: Path  # good JointBERT data
    taskfile: Path  # good task file (intent + slots)
    run: Path  # a run directory trained by `mtl-lib train` (best/, last/, history.json)
    tokenizer: object = None


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("world")
    enc = tiny_encoder("BERT", [w for w, _, _ in TRAIN])
    enc_dir = root / "tiny-bert-dir"
    enc.model.save_pretrained(enc_dir)
    enc.tokenizer.save_pretrained(enc_dir)
    jb = write_jointbert(root / "jb")
    taskfile = write(root / "good.yml", yaml.safe_dump(jointbert_tasks(jb, enc_dir)))
    run = root / "run"
    assert main(["train", str(taskfile), "--out", str(run)]) == 0  # the good path works
    assert (run / "last" / "model.safetensors").is_file() and (run / "best").is_dir()
    return World(root, enc_dir, jb, taskfile, run, load_encoder(str(enc_dir)).tokenizer)


# --------------------------------------------------------------------------- the cases


class Ctx:
    """Per-case scratch space: a copy of the world's run directory, and file writers."""

    def __init__(self, world: World, tmp: Path) -> None:
        self.w, self.tmp = world, tmp
        self.run = tmp / "run"
        shutil.copytree(world.run, self.run)
        self.guard = tmp  # everything here is hashed before/after the CLI call

    def file(self, name: str, content: str | bytes) -> Path:
        return write(self.tmp / name, content)

    def taskfile(self, tasks: dict | str | bytes, name: str = "tasks.yml") -> Path:
        body = tasks if isinstance(tasks, (str, bytes)) else yaml.safe_dump(tasks, allow_unicode=True)
        return self.file(name, body)

    def tasks(self) -> dict:
        return jointbert_tasks(self.w.jb, self.w.encoder)

    def jb_copy(self) -> Path:
        jb = self.tmp / "jb"
        shutil.copytree(self.w.jb, jb)
        return jb

    def jb_taskfile(self, mutate: Callable[[Path], object]) -> Path:
        """A task file over a copy of the good JointBERT data after ``mutate(folder)``."""
        jb = self.jb_copy()
        mutate(jb)
        return self.taskfile(jointbert_tasks(jb, self.w.encoder))

    def table_taskfile(self, fmt: str, name: str, content: str | bytes, **task) -> Path:
        path = self.file(name, content)
        spec = {"task_type": "classification", "format": fmt, "path": str(path),
                "label_field": "label", "config_name": str(self.w.encoder), **task}
        return self.taskfile({"topic": spec})

    def conll_taskfile(self, content: str | bytes) -> Path:
        path = self.file("ner.txt", content)
        return self.taskfile({"ner": {"task_type": "NER", "format": "conll", "path": str(path),
                                      "config_name": str(self.w.encoder)}})

    def ckpt(self, mutate: Callable[[Path], object]) -> Path:
        """A tampered copy of the run's ``last`` checkpoint (the guard becomes that copy)."""
        ck = self.run / "last"
        mutate(ck)
        return ck

    def load_groups(self, taskfile: Path):
        """The API path `mtl-lib train` takes: task file -> read, validate, encode."""
        return build_groups(load_task_file(taskfile).tasks, self.w.tokenizer)


@dataclass
class Case:
    id: str
    setup: Callable[[Ctx], tuple[list[str] | None, Callable[[], object] | None]]
    exc: type[BaseException]
    needles: tuple[str, ...] = ()  # must appear in the API message and the CLI line
    fast_subprocess: bool = False  # also run as a real subprocess in the fast suite
    marks: list = field(default_factory=list)


def train_case(mutate_tf: Callable[[Ctx], Path], api: str = "groups"):
    """Setup for cases whose input is a task file given to `mtl-lib train`."""

    def setup(c: Ctx):
        tf = mutate_tf(c)
        argv = ["train", str(tf), "--out", str(c.run)]
        call = {"groups": lambda: c.load_groups(tf), "load": lambda: load_task_file(tf),
                "experiment": lambda: build_experiment(tf)}[api]
        return argv, call

    return setup


def empty_encoder_dir(c: Ctx):
    enc = c.tmp / "empty-enc"
    enc.mkdir()
    return (["train", str(c.w.taskfile), "--out", str(c.run), "--encoder", str(enc)],
            lambda: load_encoder(str(enc)))


def set_case(*options: str):
    """Setup for `mtl-lib train good.yml --set KEY=VALUE` (API: TrainerConfig.from_dict)."""

    def setup(c: Ctx):
        argv = ["train", str(c.w.taskfile), "--out", str(c.run)]
        for o in options:
            argv += ["--set", o]
        parsed = {}
        for o in options:
            key, _, value = o.partition("=")
            parsed[key] = yaml.safe_load(value)
        return argv, lambda: TrainerConfig.from_dict(parsed)

    return setup


def ckpt_case(mutate: Callable[[Path], object], command: str = "predict"):
    """Setup for a tampered checkpoint given to `mtl-lib predict|evaluate` (API: load_model)."""

    def setup(c: Ctx):
        ck = c.ckpt(mutate)
        inp = c.file("in.txt", "play jazz\n")
        argv = ["predict", str(ck), "-i", str(inp), "-o", str(c.tmp / "out.jsonl")] \
            if command == "predict" else ["evaluate", str(ck)]
        return argv, lambda: load_model(ck)

    return setup


def resume_case(mutate: Callable[[Path], object]):
    """Setup for `mtl-lib train --resume` over a tampered OUT/last (API: Trainer.fit)."""

    def setup(c: Ctx):
        mutate(c.run / "last")

        def api():
            from mtl_lib import Trainer

            model, groups = build_experiment(c.w.taskfile)
            Trainer(model, groups, {"max_steps": 3, "batch_size": 4, "progress": False,
                                    "output_dir": str(c.run)}).fit(resume_from=c.run / "last")

        return ["train", str(c.w.taskfile), "--out", str(c.run), "--resume"], api

    return setup


# -- mutations -----------------------------------------------------------------------------


def replace_line(path: Path, lineno: int, new: str | None) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    if new is None:
        del lines[lineno - 1]
    else:
        lines[lineno - 1] = new
    path.write_text("\n".join(lines), encoding="utf-8")


def json_edit(path: Path, fn) -> None:
    import json

    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def tensors_edit(path: Path, fn) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    state = load_file(str(path))
    fn(state)
    save_file(state, str(path), metadata=meta)


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def grow_head(state: dict) -> None:
    state["heads.intent.linear.weight"] = torch.zeros(4, state["heads.intent.linear.weight"].shape[1])


def set_task(key: str, value):
    def mutate(c: Ctx) -> Path:
        t = c.tasks()
        t["intent"][key] = value
        return c.taskfile(t)
    return mutate


def training_opt(key: str, value):
    def mutate(c: Ctx) -> Path:
        t = c.tasks()
        t["training"][key] = value
        return c.taskfile(t)
    return mutate


def rename_task(name: str):
    def mutate(c: Ctx) -> Path:
        t = c.tasks()
        return c.taskfile({name: t["intent"], "slots": t["slots"], "training": t["training"]})
    return mutate


def yaml_bomb(key: str) -> str:
    """The "billion laughs" as a task file: ``key`` of task ``intent`` (``labels``), or the
    ``training:`` option ``key``, holds nine nested levels of nine aliases: 9**9 strings
    from about 450 bytes."""
    levels = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"&{cur} [{','.join(['*' + prev] * 9)}]" for prev, cur in zip("abcdefgh", "bcdefghi")]
    value = "[" + ", ".join(levels) + "]"
    if key == "labels":
        return f"intent:\n  task_type: NER\n  labels: {value}\n"
    return f"intent:\n  task_type: NER\ntraining:\n  {key}: {value}\n"


CSV_GOOD = "text,label\nplay jazz,music\nbook a table,food\nplay rock,music\nbook a room,food\n"
CONLL_GOOD = "-DOCSTART- O\n\nJohn B-PER\nlives O\n\nin O\nParis B-LOC\n"

CASES = [
    # ---- data readers, reached through a task file (API: task file -> build_groups) -----------
    Case("jointbert-tag-count-mismatch", train_case(lambda c: c.jb_taskfile(
        lambda jb: replace_line(jb / "train" / "seq.out", 2, "O O O O"))),
        DataFormatError, ("seq.out:2", "expected 5 tags", "found 4"), fast_subprocess=True),
    Case("jointbert-line-count-mismatch", train_case(lambda c: c.jb_taskfile(
        lambda jb: replace_line(jb / "train" / "label", 8, None))),
        DataFormatError, ("label", "seq.in has 8")),
    Case("jointbert-unknown-intent", train_case(lambda c: c.jb_taskfile(
        lambda jb: replace_line(jb / "train" / "label", 3, "PlayMuzic"))),
        DataFormatError, ("unknown label 'PlayMuzic'", "intent")),
    Case("jointbert-unknown-slot-tag", train_case(lambda c: c.jb_taskfile(
        lambda jb: replace_line(jb / "train" / "seq.out", 1, "O B-genre B-mood"))),
        DataFormatError, ("unknown label 'B-mood'", "slots")),
    Case("jointbert-empty-file", train_case(lambda c: c.jb_taskfile(
        lambda jb: [write(jb / "train" / n, "") for n in ("seq.in", "seq.out", "label")])),
        DataFormatError, ("seq.in", "empty")),
    Case("jointbert-missing-file", train_case(lambda c: c.jb_taskfile(
        lambda jb: (jb / "train" / "seq.out").unlink())),
        DataFormatError, ("missing seq.out",)),
    Case("jointbert-non-utf8", train_case(lambda c: c.jb_taskfile(
        lambda jb: write(jb / "train" / "seq.in",
                         (jb / "train" / "seq.in").read_bytes().replace(b"rock", b"r\xf6ck")))),
        DataFormatError, ("seq.in:3", "not valid utf-8", "0xf6")),
    Case("jointbert-blank-utterance", train_case(lambda c: c.jb_taskfile(
        lambda jb: [replace_line(jb / "train" / n, 4, "") for n in ("seq.in", "seq.out", "label")])),
        DataFormatError, ("seq.in:4", "empty utterance")),
    Case("label-file-duplicate", train_case(lambda c: c.jb_taskfile(
        lambda jb: write(jb / "intent_label.txt", INTENTS + "PlayMusic\n"))),
        DataFormatError, ("intent_label.txt:5", "already listed")),
    Case("label-file-class-num", train_case(set_task("class_num", 5)),
         TaskFileError, ("intent", "class_num is 5", "3 labels")),
    Case("data-path-missing", train_case(set_task("path", "/nonexistent/snips-copy")),
         TaskFileError, ("intent", "no train data", "/nonexistent/snips-copy")),
    Case("conll-column-count", train_case(lambda c: c.conll_taskfile(
        "John NNP B-PER\nlives VBZ O\nin O\n")), DataFormatError, ("ner.txt:3", "expected 3 columns")),
    Case("conll-docstart-only", train_case(lambda c: c.conll_taskfile("-DOCSTART- O\n\n\n")),
         DataFormatError, ("ner.txt", "no sentences")),
    Case("conll-crlf-then-one-column", train_case(lambda c: c.conll_taskfile(
        CONLL_GOOD.replace("\n", "\r\n") + "Berlin\r\n")), DataFormatError, ("ner.txt:8", "expected 2 columns")),
    Case("csv-header-only", train_case(lambda c: c.table_taskfile("csv", "t.csv", "text,label\n")),
         DataFormatError, ("t.csv", "no data rows")),
    Case("csv-empty", train_case(lambda c: c.table_taskfile("csv", "t.csv", "")),
         DataFormatError, ("t.csv", "empty")),
    Case("csv-missing-column", train_case(lambda c: c.table_taskfile(
        "csv", "t.csv", CSV_GOOD.replace("text,", "sentence,"))),
        DataFormatError, ("t.csv:2", "missing column", "'text'")),
    Case("csv-ragged-row", train_case(lambda c: c.table_taskfile(
        "csv", "t.csv", CSV_GOOD + "play,music,extra\n")), DataFormatError, ("t.csv:6", "expected 2 fields")),
    Case("csv-non-utf8", train_case(lambda c: c.table_taskfile(
        "csv", "t.csv", CSV_GOOD.encode().replace(b"room", b"r\xe9sum\xe9"))),
        DataFormatError, ("t.csv:5", "not valid utf-8")),
    Case("csv-byte-order-mark", train_case(lambda c: c.table_taskfile(
        "csv", "t.csv", "\ufeff" + CSV_GOOD)), DataFormatError, ("t.csv:1", "utf-8-sig")),
    Case("csv-unknown-label", train_case(lambda c: c.table_taskfile(
        "csv", "t.csv", CSV_GOOD + "play blues,musik\n" * 3,
        label_map_or_file=str(c.file("topics.txt", "music\nfood\n")))),
        DataFormatError, ("t.csv", "unknown label 'musik'")),
    Case("jsonl-malformed", train_case(lambda c: c.table_taskfile(
        "jsonl", "t.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n')),
        DataFormatError, ("t.jsonl:2", "malformed JSON")),
    Case("jsonl-not-an-object", train_case(lambda c: c.table_taskfile(
        "jsonl", "t.jsonl", '{"text": "a", "label": "x"}\n["b", "y"]\n')),
        DataFormatError, ("t.jsonl:2", "expected a JSON object")),
    # ---- task files (API: load_task_file) -------------------------------------------------
    Case("taskfile-duplicated-task-name", train_case(lambda c: c.taskfile(
        c.w.taskfile.read_text() + "intent:\n  task_type: classification\n"), api="load"),
        TaskFileError, ("duplicated key 'intent'",), fast_subprocess=True),
    Case("taskfile-unknown-key", train_case(set_task("loss_wieght", 2.0), api="load"),
         TaskFileError, ("intent", "unknown key 'loss_wieght'")),
    Case("taskfile-missing-task-type", train_case(lambda c: c.taskfile({"intent": {"format": "csv"}}),
                                                  api="load"), TaskFileError, ("intent", "task_type")),
    Case("taskfile-unknown-task-type", train_case(set_task("task_type", "Regression"), api="load"),
         TaskFileError, ("intent", "task_type 'Regression'")),
    Case("taskfile-negative-loss-weight", train_case(set_task("loss_weight", -1), api="load"),
         TaskFileError, ("intent", "loss_weight", ">= 0")),
    Case("taskfile-nan-loss-weight", train_case(set_task("loss_weight", float("nan")), api="load"),
         TaskFileError, ("intent", "loss_weight", "finite")),
    Case("taskfile-string-loss-weight", train_case(set_task("loss_weight", "heavy"), api="load"),
         TaskFileError, ("intent", "loss_weight")),
    Case("taskfile-dropout-above-one", train_case(set_task("dropout_prob", 1.5), api="load"),
         TaskFileError, ("intent", "dropout_prob", "[0, 1)")),
    Case("taskfile-negative-dropout", train_case(set_task("dropout_prob", -0.1), api="load"),
         TaskFileError, ("intent", "dropout_prob")),
    Case("taskfile-inf-dropout", train_case(set_task("dropout_prob", float("inf")), api="load"),
         TaskFileError, ("intent", "dropout_prob", "finite")),
    Case("taskfile-unknown-metric", train_case(set_task("metrics", ["accuracy"]), api="load"),
         TaskFileError, ("intent", "metric 'accuracy'")),
    Case("taskfile-metrics-not-names", train_case(set_task("metrics", [{"name": "f1"}]), api="load"),
         TaskFileError, ("intent", "metrics")),
    Case("taskfile-unknown-loss", train_case(set_task("loss_type", "FocalLoss"), api="load"),
         TaskFileError, ("intent", "loss_type 'FocalLoss'")),
    Case("taskfile-config-name-list", train_case(set_task("config_name", ["a", "b"]), api="load"),
         TaskFileError, ("intent", "config_name")),
    Case("taskfile-splits-not-mapping", train_case(set_task("splits", "train.csv"), api="load"),
         TaskFileError, ("intent", "splits")),
    Case("taskfile-two-encoders", train_case(set_task("config_name", "minilm"), api="load"),
         TaskFileError, ("different encoders",)),
    Case("taskfile-invalid-yaml", train_case(lambda c: c.taskfile("intent:\n  task_type: [x\n"), api="load"),
         TaskFileError, ("tasks.yml", "invalid YAML")),
    Case("taskfile-non-utf8", train_case(lambda c: c.taskfile(b"intent:\n  task_type: caf\xe9\n"), api="load"),
         TaskFileError, ("tasks.yml", "UTF-8")),
    Case("taskfile-empty", train_case(lambda c: c.taskfile(""), api="load"), TaskFileError, ("tasks.yml",)),
    Case("taskfile-top-level-list", train_case(lambda c: c.taskfile("- intent\n- slots\n"), api="load"),
         TaskFileError, ("mapping",)),
    Case("taskfile-not-found", train_case(lambda c: c.tmp / "nope.yml", api="load"),
         TaskFileError, ("nope.yml", "not found")),
    Case("taskfile-training-negative-epochs", train_case(training_opt("epochs", -1), api="load"),
         TaskFileError, ("training", "epochs", "> 0")),
    # ---- training options through --set (API: TrainerConfig.from_dict) ---------------------
    Case("set-negative-encoder-lr", set_case("encoder_lr=-1e-5"), ValueError, ("encoder_lr", "> 0")),
    Case("set-nan-classifier-lr", set_case("classifier_lr=.nan"), ValueError, ("classifier_lr", "finite")),
    Case("set-inf-grad-norm", set_case("max_grad_norm=.inf"), ValueError, ("max_grad_norm", "finite")),
    Case("set-negative-weight-decay", set_case("weight_decay=-0.1"), ValueError, ("weight_decay", ">= 0")),
    Case("set-string-batch-size", set_case("batch_size=lots"), ValueError, ("batch_size",)),
    Case("set-fractional-batch-size", set_case("batch_size=2.5"), ValueError, ("batch_size", "integer")),
    Case("set-null-epochs", set_case("epochs=null"), ValueError, ("epochs",)),
    Case("set-zero-max-steps", set_case("max_steps=0"), ValueError, ("max_steps", "integer >= 1")),
    Case("set-warmup-ratio-one", set_case("warmup_ratio=1"), ValueError, ("warmup_ratio", "[0, 1)")),
    Case("set-unknown-sampler", set_case("sampler=random"), ValueError, ("sampler must be one of", "got 'random'")),
    Case("set-unknown-option", set_case("learning_rate=0.1"), ValueError, ("learning_rate",)),
    # ---- encoders ---------------------------------------------------------------------------
    Case("encoder-unknown-name", lambda c: (
        ["train", str(c.w.taskfile), "--out", str(c.run), "--encoder", "bert-tiny-nonexistent"],
        lambda: load_encoder("bert-tiny-nonexistent")),
        EncoderNotAvailable, ("bert-tiny-nonexistent",)),
    Case("encoder-unknown-in-taskfile", train_case(lambda c: c.taskfile(
        {k: ({**v, "config_name": "robertta-base"} if k != "training" else v) for k, v in c.tasks().items()}),
        api="experiment"), EncoderNotAvailable, ("robertta-base",)),
    Case("encoder-dir-without-config", empty_encoder_dir, EncoderNotAvailable, ("empty-enc", "config.json")),
    Case("encoder-registry-not-downloaded", lambda c: (
        ["train", str(c.w.taskfile), "--out", str(c.run), "--encoder", "xlnet-large-cased"],
        lambda: load_encoder("xlnet-large-cased")),
        EncoderNotAvailable, ("xlnet-large-cased", "not available offline"),
        marks=[pytest.mark.skipif(any(e.name == "xlnet-large-cased" and e.available for e in list_encoders()),
                                  reason="xlnet-large-cased is available locally")]),
    # ---- checkpoints (API: load_model) ------------------------------------------------------
    Case("checkpoint-missing-dir", lambda c: (["predict", str(c.tmp / "no-such-run")],
                                              lambda: load_model(c.tmp / "no-such-run")),
         CheckpointError, ("no-such-run", "not found")),
    Case("checkpoint-truncated-weights", ckpt_case(lambda ck: truncate(ck / "model.safetensors")),
         CheckpointError, ("model.safetensors", "truncated"), fast_subprocess=True),
    Case("checkpoint-empty-weights", ckpt_case(lambda ck: write(ck / "model.safetensors", b"")),
         CheckpointError, ("model.safetensors", "truncated")),
    Case("checkpoint-deleted-weights", ckpt_case(lambda ck: (ck / "model.safetensors").unlink(), "evaluate"),
         CheckpointError, ("model.safetensors", "missing")),
    Case("checkpoint-corrupt-config", ckpt_case(lambda ck: truncate(ck / "config.json", 0.7)),
         CheckpointError, ("config.json", "not valid JSON")),
    Case("checkpoint-foreign-config", ckpt_case(lambda ck: write(ck / "config.json", '{"model_type": "bert"}')),
         CheckpointError, ("config.json", "not an mtl_lib checkpoint")),
    Case("checkpoint-config-tasks-garbled", ckpt_case(lambda ck: json_edit(
        ck / "config.json", lambda d: d.update(tasks="intent,slots"))), CheckpointError, ("config.json",)),
    Case("checkpoint-deleted-encoder-dir", ckpt_case(lambda ck: shutil.rmtree(ck / "encoder"), "evaluate"),
         CheckpointError, ("encoder", "missing")),
    Case("checkpoint-corrupt-encoder-config", ckpt_case(lambda ck: write(ck / "encoder" / "config.json", "{")),
         CheckpointError, ("encoder",)),
    Case("checkpoint-corrupt-tokenizer", ckpt_case(lambda ck: truncate(ck / "encoder" / "tokenizer.json")),
         CheckpointError, ("encoder",)),
    Case("checkpoint-tensor-shape-changed", ckpt_case(lambda ck: tensors_edit(ck / "model.safetensors", grow_head)),
         CheckpointError, ("heads.intent.linear.weight", "shape (4, 32)", "expects (3, 32)")),
    Case("checkpoint-tensor-deleted", ckpt_case(lambda ck: tensors_edit(
        ck / "model.safetensors", lambda s: s.pop("heads.slots.linear.bias"))),
        CheckpointError, ("missing tensor 'heads.slots.linear.bias'",)),
    Case("checkpoint-tensor-added", ckpt_case(lambda ck: tensors_edit(
        ck / "model.safetensors", lambda s: s.update({"heads.extra.weight": torch.zeros(2)}))),
        CheckpointError, ("unexpected tensor 'heads.extra.weight'",)),
    Case("checkpoint-labels-edited", ckpt_case(lambda ck: json_edit(
        ck / "config.json", lambda d: d["tasks"][0]["labels"].append("Smuggled"))),
        CheckpointError, ("heads.intent.linear", "shape")),
    Case("checkpoint-encoder-width-edited", ckpt_case(lambda ck: json_edit(
        ck / "encoder" / "config.json", lambda d: d.update(hidden_size=64))), CheckpointError, ("shape",)),
    # ---- resuming from a tampered OUT/last (API: Trainer.fit(resume_from=...)) ----------------
    Case("resume-missing-last", resume_case(lambda ck: shutil.rmtree(ck)), CheckpointError, ("last",)),
    Case("resume-trainer-state-garbled", resume_case(lambda ck: json_edit(
        ck / "trainer_state.json", lambda d: d.pop("step"))), CheckpointError, ("trainer_state.json",)),
    Case("resume-optimizer-tensor-renamed", resume_case(lambda ck: tensors_edit(
        ck / "optimizer.safetensors", lambda s: s.update({"bogus": torch.zeros(1)}))),
        CheckpointError, ("optimizer.safetensors",)),
    Case("resume-optimizer-state-shape", resume_case(lambda ck: tensors_edit(
        ck / "optimizer.safetensors",
        lambda s: s.update({k: torch.zeros(3) for k in s if k.endswith("exp_avg")}))),
        CheckpointError, ("optimizer.safetensors",)),
    Case("resume-corrupt-history", resume_case(lambda ck: write(ck / "history.json", "[{")),
         CheckpointError, ("history.json",)),
    Case("resume-without-optimizer", resume_case(lambda ck: (ck / "optimizer.safetensors").unlink()),
         CheckpointError, ("cannot be resumed",)),
    # ---- command line ---------------------------------------------------------------------
    Case("cli-out-is-a-file", lambda c: (
        ["train", str(c.w.taskfile), "--out", str(c.file("out.txt", "keep me"))], None),
        ValueError, ("out.txt", "not a directory")),
    Case("cli-predict-input-missing", lambda c: (["predict", str(c.run), "-i", str(c.tmp / "none.txt")], None),
         ValueError, ("none.txt",)),
    Case("cli-predict-input-non-utf8", lambda c: (
        ["predict", str(c.run), "-i", str(c.file("in.txt", b"caf\xe9\n"))], None), ValueError, ("in.txt",)),
    Case("cli-evaluate-data-not-a-folder", lambda c: (
        ["evaluate", str(c.run), "--data", str(c.tmp / "nothing")], None), ValueError, ("nothing", "not found")),
    Case("cli-invalid-split", lambda c: (["evaluate", str(c.run), "--split", "validation"], None),
         ValueError, ("--split", "'validation'")),
    Case("cli-missing-out", lambda c: (["train", str(c.w.taskfile)], None), ValueError, ("--out",)),
    Case("cli-set-without-equals", lambda c: (
        ["train", str(c.w.taskfile), "--out", str(c.run), "--set", "epochs"], None), ValueError, ("KEY=VALUE",)),
    Case("cli-demo-nan-epochs", lambda c: (
        ["demo", "--out", str(c.run), "--epochs", "nan", "--max-examples", "8", "--encoder", str(c.w.encoder)],
        None), ValueError, ("epochs", "finite")),
    Case("cli-demo-zero-examples", lambda c: (
        ["demo", "--out", str(c.run), "--max-examples", "0", "--encoder", str(c.w.encoder)], None),
        TaskFileError, ("max_examples",)),
    # ---- round two (issue 14): names, YAML, sizes, mistyped fields, tampered files ------------
    *[Case(f"taskfile-task-name-{key or 'empty'}", train_case(rename_task(name), api="load"), TaskFileError, needles)
      for key, name, needles in [
          ("dotted", "a.b", ("'a.b'", "letters, digits")),
          ("", "", ("task name is empty",)),
          ("keys", "keys", ("'keys'", "nn.ModuleDict")),
          ("items", "items", ("'items'", "nn.ModuleDict")),
          ("update", "update", ("'update'", "nn.ModuleDict")),
          ("group-key", "intent+slots", ("'intent+slots'", "'+' joins"))]],
    Case("taskfile-non-scalar-key", train_case(lambda c: c.taskfile("? [a, b]\n: {task_type: NER}\n"), api="load"),
         TaskFileError, ("tasks.yml:1", "a key must be a name, found a sequence")),
    Case("taskfile-yaml-bomb-labels", train_case(lambda c: c.taskfile(yaml_bomb("labels")), api="load"),
         TaskFileError, ("tasks.yml", "expands to more than 1,000,000 values")),
    Case("taskfile-yaml-bomb-training", train_case(lambda c: c.taskfile(yaml_bomb("epochs")), api="load"),
         TaskFileError, ("tasks.yml", "expands to more than 1,000,000 values")),
    Case("label-file-dev-zero", train_case(set_task("label_map_or_file", "/dev/zero")),
         DataFormatError, ("/dev/zero", "not a regular file")),
    Case("jsonl-text-null", train_case(lambda c: c.table_taskfile(
        "jsonl", "t.jsonl", '{"text": "a b", "label": "x"}\n{"text": null, "label": "y"}\n')),
        DataFormatError, ("t.jsonl:2", "column 'text' should hold text, found null")),
    Case("jsonl-label-one-point-zero", train_case(lambda c: c.table_taskfile(
        "jsonl", "t.jsonl", '{"text": "a b", "label": 1}\n{"text": "c", "label": 1.0}\n')),
        DataFormatError, ("t.jsonl:2", "1.0", "decimal point")),
    Case("jsonl-more-tags-than-words", train_case(lambda c: c.table_taskfile(
        "jsonl", "t.jsonl", '{"text": "a b", "tags": ["O", "O"]}\n{"text": "c d", "tags": ["O", "O", "O"]}\n',
        task_type="NER", label_field="tags")), DataFormatError, ("t.jsonl:2", "3 tags for 2 words")),
    Case("jsonl-multilabel-ints-and-strings", train_case(lambda c: c.table_taskfile(
        "jsonl", "t.jsonl", '{"text": "a b", "label": ["x"]}\n{"text": "c", "label": [1, "x"]}\n',
        task_type="multilabel")), DataFormatError, ("t.jsonl:2", "mixes int and str")),
    Case("csv-unknown-label-names-line-and-label-file", train_case(lambda c: c.table_taskfile(
        "csv", "t.csv", CSV_GOOD + "play blues,musik\n", label_map_or_file=str(c.file("topics.txt", "music\nfood\n")))),
        DataFormatError, ("t.csv:6", "unknown label 'musik'", "topics.txt")),
    Case("jointbert-unknown-intent-names-line", train_case(lambda c: c.jb_taskfile(
        lambda jb: replace_line(jb / "train" / "label", 3, "PlayMuzic"))),
        DataFormatError, ("train/label:3", "unknown label 'PlayMuzic'", "intent_label.txt")),
    Case("checkpoint-task-name-dotted", ckpt_case(lambda ck: json_edit(
        ck / "config.json", lambda d: d["tasks"][0].update(name="a.b"))), CheckpointError, ("config.json", "'a.b'")),
    Case("checkpoint-task-name-keys", ckpt_case(lambda ck: json_edit(
        ck / "config.json", lambda d: d["tasks"][0].update(name="keys"))),
        CheckpointError, ("config.json", "'keys'", "nn.ModuleDict")),
    Case("checkpoint-config-nested-deeply", ckpt_case(lambda ck: write(
        ck / "config.json", "[" * 100_000 + "]" * 100_000)), CheckpointError, ("config.json", "nested more than")),
    Case("checkpoint-encoder-vocab-1e11", ckpt_case(lambda ck: json_edit(
        ck / "encoder" / "config.json", lambda d: d.update(vocab_size=1e11))),
        CheckpointError, ("encoder/config.json", "vocab_size must be an integer")),
    Case("checkpoint-encoder-150-layers", ckpt_case(lambda ck: json_edit(
        ck / "encoder" / "config.json", lambda d: d.update(num_hidden_layers=150))),
        CheckpointError, ("encoder/config.json", "num_hidden_layers")),
    Case("checkpoint-encoder-100-layers", ckpt_case(lambda ck: json_edit(
        ck / "encoder" / "config.json", lambda d: d.update(num_hidden_layers=100))),
        CheckpointError, ("encoder/config.json", "needs at least")),
    Case("resume-history-nested-deeply", resume_case(lambda ck: write(
        ck / "history.json", "[" * 100_000 + "]" * 100_000)), CheckpointError, ("history.json", "nested more than")),
    Case("set-negative-seed", set_case("seed=-1"), ValueError, ("seed must be an integer >= 0", "got -1")),
]
assert len({c.id for c in CASES}) == len(CASES)
N_CASES = len(CASES)


def params(cases, subprocess_only: bool | None = None, with_api: bool = False):
    out = []
    for c in cases:
        if with_api and c.id.startswith("cli-"):  # command-line mistakes have no API counterpart
            continue
        if subprocess_only is True and not c.fast_subprocess:
            continue
        if subprocess_only is False and c.fast_subprocess:
            continue
        out.append(pytest.param(c, id=c.id, marks=c.marks))
    return out


def check_cli_line(stderr: str, code: int, command: str, needles) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert code != 0, stderr
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    line = lines[0]
    assert line.startswith(f"mtl-lib {command}: error: ") or line.startswith("mtl-lib: error: "), line
    for n in needles:
        assert n in line, (n, line)
    return line


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("case", params(CASES, with_api=True))
def test_api_raises_specific_error(case: Case, world: World, tmp_path: Path):
    argv, api = case.setup(Ctx(world, tmp_path))
    assert api is not None
    with pytest.raises(case.exc) as info:
        api()
    if case.exc is ValueError:  # not a subclass with a more specific meaning
        assert not isinstance(info.value, (TaskFileError, DataFormatError, CheckpointError))
    for n in case.needles:
        assert n in str(info.value), (n, str(info.value))


@pytest.mark.parametrize("case", params(CASES))
def test_cli_one_line_and_nothing_overwritten(case: Case, world: World, tmp_path: Path, capfd):
    ctx = Ctx(world, tmp_path)
    argv, _ = case.setup(ctx)
    before = tree_digest(ctx.guard)
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    err = capfd.readouterr().err
    check_cli_line(err, code, argv[0], case.needles)
    assert [str(w.message) for w in caught] == []  # a warning would be extra lines on stderr
    assert tree_digest(ctx.guard) == before, "the existing run directory was modified"


SUBPROCESS_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO),
                  "OMP_NUM_THREADS": "1"}


def run_cli_subprocess(argv: list[str], cwd: Path) -> tuple[int, str]:
    """``python -m mtl_lib.cli ARGV`` in a fresh interpreter: (exit status, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "mtl_lib.cli", *argv], cwd=cwd, env={**os.environ, **SUBPROCESS_ENV},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr


def prepare(cases, world: World, tmp_path_factory) -> dict:
    prepared = {}
    for case in cases:
        ctx = Ctx(world, tmp_path_factory.mktemp(case.id))
        argv, _ = case.setup(ctx)
        prepared[case.id] = (ctx, argv, tree_digest(ctx.guard))
    return prepared


@pytest.fixture(scope="module")
def fresh_interpreter_results(world, tmp_path_factory):
    """The representative cases, each in a fresh ``python -m mtl_lib.cli`` (~5 s of imports)."""
    prepared = prepare([c for c in CASES if c.fast_subprocess], world, tmp_path_factory)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {cid: pool.submit(run_cli_subprocess, argv, ctx.tmp) for cid, (ctx, argv, _) in prepared.items()}
        return {cid: (prepared[cid], *fut.result()) for cid, fut in futures.items()}


@pytest.fixture(scope="module")
def forked_results(world, tmp_path_factory):
    """Every case in its own process, forked from one warm interpreter that has imported
    mtl_lib (tests/scripts/reliability_cli_runner.py): a real process, exit status and stderr,
    without paying the imports 90 times."""
    prepared = prepare(CASES, world, tmp_path_factory)
    root = tmp_path_factory.mktemp("forked")
    jobs = [{"id": cid, "argv": argv, "cwd": str(ctx.tmp), "stdout": str(root / f"{cid}.out"),
             "stderr": str(root / f"{cid}.err")} for cid, (ctx, argv, _) in prepared.items()]
    (root / "cases.json").write_text(json.dumps(jobs))
    runner = REPO / "tests" / "scripts" / "reliability_cli_runner.py"
    proc = subprocess.run([sys.executable, str(runner), str(root / "cases.json"), str(root / "results.json")],
                          env={**os.environ, **SUBPROCESS_ENV}, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = json.loads((root / "results.json").read_text())
    return {cid: (prepared[cid], codes[cid], (root / f"{cid}.err").read_text()) for cid in prepared}


def _check_process(case: Case, results) -> None:
    (ctx, argv, before), code, stderr = results[case.id]
    check_cli_line(stderr, code, argv[0], case.needles)
    assert code == 2, code
    assert tree_digest(ctx.guard) == before, "the existing run directory was modified"


@pytest.mark.parametrize("case", params(CASES, subprocess_only=True))
def test_fresh_interpreter_representative(case: Case, fresh_interpreter_results):
    _check_process(case, fresh_interpreter_results)


@pytest.mark.slow
@pytest.mark.parametrize("case", params(CASES))
def test_separate_process_every_case(case: Case, forked_results):
    _check_process(case, forked_results)


def test_enough_cases():
    assert N_CASES >= 30
    kinds = {c.exc for c in CASES}
    assert {DataFormatError, TaskFileError, CheckpointError, EncoderNotAvailable, ValueError} <= kinds


# --------------------------------------------------------------------------- accepted inputs


def test_crlf_line_ends_are_accepted(world: World, tmp_path: Path, capfd):
    """CRLF data files and a CRLF task file read exactly like their LF versions, and train."""
    crlf = write_jointbert(tmp_path / "jb", newline="\r\n")
    lf_tasks = load_task_file(world.taskfile)
    tf = write(tmp_path / "crlf.yml", yaml.safe_dump(jointbert_tasks(crlf, world.encoder)).replace("\n", "\r\n"))
    crlf_tasks = load_task_file(tf)
    assert [t.name for t in crlf_tasks.tasks] == [t.name for t in lf_tasks.tasks]
    lf_groups = build_groups(lf_tasks.tasks, world.tokenizer)
    crlf_groups = build_groups(crlf_tasks.tasks, world.tokenizer)
    for a, b in zip(lf_groups, crlf_groups, strict=True):
        assert a.records == b.records
        assert [f["labels"] for f in a.splits["train"]] == [f["labels"] for f in b.splits["train"]]
    conll = write(tmp_path / "n.txt", CONLL_GOOD.replace("\n", "\r\n"))
    from mtl_lib.data import read_conll, read_table

    assert read_conll(conll) == read_conll(write(tmp_path / "n2.txt", CONLL_GOOD))
    assert read_table(write(tmp_path / "a.csv", CSV_GOOD.replace("\n", "\r\n"))) == \
        read_table(write(tmp_path / "b.csv", CSV_GOOD))
    capfd.readouterr()
    assert main(["train", str(tf), "--out", str(tmp_path / "run"), "--set", "max_steps=1"]) == 0
    assert load_model(tmp_path / "run").tasks["slots"].labels == ["O", "B-genre", "B-num", "B-city", "B-obj"]


def test_duplicated_task_names_in_api_are_refused(world: World):
    """Two TaskSpecs with one name (possible from Python, not from YAML) are refused."""
    tasks = load_task_file(world.taskfile).tasks
    twin = TaskSpec(**{**tasks[0].to_dict(), "labels": []})
    with pytest.raises(TaskFileError, match="duplicated task name 'intent'"):
        build_groups([tasks[0], twin], world.tokenizer)


# --------------------------------------------------------------------------- property-based

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=True),
                     st.text(max_size=12), st.sampled_from([*TASK_TYPES, "NER", "SingleSenClassification",
                                                            *FORMATS, *LOSSES, *METRICS]))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                       max_leaves=6)
_KEYS = sorted(TaskSpec.__dataclass_fields__)
_names = st.text(max_size=8)
_VALID = {  # a plausible value per key, so that a random value often is the only wrong one
    "task_type": st.sampled_from([*TASK_TYPES, "NER", "SingleSenClassification"]),
    "format": st.sampled_from(FORMATS), "loss_type": st.sampled_from(sorted(LOSSES)),
    "metrics": st.lists(st.sampled_from(sorted(METRICS)), max_size=2),
    "loss_weight": st.floats(0, 10), "dropout_prob": st.floats(0, 0.9), "dev_fraction": st.floats(0.05, 0.5),
    "class_num": st.integers(1, 9), "max_examples": st.integers(1, 99),
    "splits": st.dictionaries(st.sampled_from(["train", "dev", "test"]), _names, max_size=2),
    "level_columns": st.lists(_names, max_size=2), "labels": st.lists(_names, max_size=3),
    "file_names": st.lists(_names, max_size=3),
}
_bodies = st.one_of(
    _values,
    st.dictionaries(st.one_of(st.sampled_from(_KEYS), st.text(max_size=8)), _values, max_size=6),
    st.fixed_dictionaries({"task_type": _VALID["task_type"]},
                          optional={k: st.one_of(_VALID.get(k, _names), _values)
                                    for k in _KEYS if k not in ("task_type", "name")}),
)
_task_files = st.one_of(
    _values,
    st.dictionaries(st.one_of(st.text(max_size=8), st.integers(), st.just("training")), _bodies, max_size=4),
)


def _well_typed(spec: TaskSpec) -> None:
    assert spec.task_type in TASK_TYPES and spec.format in FORMATS
    assert isinstance(spec.loss_type, str) and spec.loss_type in LOSSES
    assert spec.metrics and all(isinstance(m, str) and m in METRICS for m in spec.metrics)
    for key in ("loss_weight", "dropout_prob", "dev_fraction"):
        value = getattr(spec, key)
        assert isinstance(value, (int, float)) and math.isfinite(value), key
    assert spec.loss_weight >= 0 and 0 <= spec.dropout_prob < 1
    for key in ("path", "label_field", "text_column", "text_pair_column", "quoting", "encoding",
                "label_map_or_file", "model_type", "config_name"):
        assert isinstance(getattr(spec, key), str), key
    for key in ("level_columns", "labels", "file_names"):
        assert all(isinstance(v, str) for v in getattr(spec, key)), key
    assert isinstance(spec.splits, dict) and all(isinstance(v, str) for v in spec.splits.values())
    assert spec.class_num is None or (isinstance(spec.class_num, int) and spec.class_num >= 1)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.too_slow])
@given(raw=_task_files)
def test_random_task_files_load_or_raise_task_file_error(raw, tmp_path):
    path = tmp_path / "random.yml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    try:
        tf = load_task_file(path)
    except TaskFileError as err:
        assert str(path) in str(err)  # every message names the file
        return
    assert tf.tasks
    for spec in tf.tasks:
        _well_typed(spec)
