"""Error scenarios shown in the docs: each one makes a real mistake and records the message.

A scenario writes its files into a fresh temporary directory, runs the code shown in the
docs from there (so paths in messages are relative, as a user would see them), and keeps
the exception. ``run(name)`` returns the files, the code and the exact message; the
``mtl-error`` directive renders them. A scenario that no longer raises is a docs error.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import pickle
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Scenario:
    files: dict[str, str | bytes]
    code: str  # what the reader types: Python statements, or a shell line starting with "$ "
    expect: str  # name of the exception class (or "exit 2" for the command line)
    shown: dict[str, str] = field(default_factory=dict)  # display text for binary files


@dataclass
class Outcome:
    scenario: Scenario
    message: str  # the last line(s) a user sees
    error: str  # exception class name, or "exit <status>"


def _yaml(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


SNIPS_MINI = {  # a JointBERT folder small enough to read in the docs build
    "mini/train/seq.in": "play jazz by miles davis\nwake me at seven\n",
    "mini/train/seq.out": "O B-genre O B-artist I-artist\nO O O B-time\n",
    "mini/train/label": "PlayMusic\nSetAlarm\n",
    "mini/dev/seq.in": "play some blues\n",
    "mini/dev/seq.out": "O O B-genre\n",
    "mini/dev/label": "PlayMusic\n",
    "mini/intent_label.txt": "PlayMusic\nSetAlarm\nBookRestaurant\n",
}

_TASK = """\
intent:
  task_type: SingleSenClassification
  format: jointbert
  path: mini
  label_field: intent
"""

SCENARIOS: dict[str, Scenario] = {
    # ---------------------------------------------------------------- task files
    "taskfile-unknown-key": Scenario(
        {"tasks.yml": _TASK + "  metric: [classification_accuracy]   # should be 'metrics'\n"},
        'load_task_file("tasks.yml")', "TaskFileError"),
    "taskfile-task-type": Scenario(
        {"tasks.yml": _TASK.replace("SingleSenClassification", "SingleSentenceClassification")},
        'load_task_file("tasks.yml")', "TaskFileError"),
    "taskfile-missing-type": Scenario(
        {"tasks.yml": _TASK.replace("  task_type: SingleSenClassification\n", "")},
        'load_task_file("tasks.yml")', "TaskFileError"),
    "taskfile-metric": Scenario(
        {"tasks.yml": _TASK + "  metrics: [accuracy]\n"},
        'load_task_file("tasks.yml")', "TaskFileError"),
    "taskfile-loss": Scenario(
        {"tasks.yml": _TASK + "  loss_type: CrossEntropy\n"},
        'load_task_file("tasks.yml")', "TaskFileError"),
    "taskfile-dropout": Scenario(
        {"tasks.yml": _TASK + "  dropout_prob: 10     # meant 10 %\n"},
        'load_task_file("tasks.yml")', "TaskFileError"),
    "taskfile-two-encoders": Scenario(
        {"tasks.yml": _TASK + "  config_name: minilm\n"
         + _TASK.replace("intent:", "slots:").replace("SingleSenClassification", "NER")
         .replace("label_field: intent", "label_field: slots")
         + "  config_name: bert-base-uncased\n"},
        'load_task_file("tasks.yml")', "TaskFileError"),
    "taskfile-duplicate": Scenario(
        {"tasks.yml": _TASK + _TASK}, 'load_task_file("tasks.yml")', "TaskFileError"),
    "taskfile-yaml": Scenario(
        {"tasks.yml": _TASK + " metrics: [classification_accuracy]\n"},
        'load_task_file("tasks.yml")', "TaskFileError"),
    "taskfile-class-num": Scenario(
        {**SNIPS_MINI, "tasks.yml": _TASK + "  label_map_or_file: mini/intent_label.txt\n"
         "  class_num: 7\n"},
        'build_experiment("tasks.yml", encoder="tiny-bert")', "TaskFileError"),
    "taskfile-unknown-label": Scenario(
        {**SNIPS_MINI, "mini/intent_label.txt": "PlayMusic\nBookRestaurant\n",
         "tasks.yml": _TASK + "  label_map_or_file: mini/intent_label.txt\n"},
        'build_experiment("tasks.yml", encoder="tiny-bert")', "DataFormatError"),
    "taskfile-pickle": Scenario(
        {**SNIPS_MINI, "mini/intent_labels.joblib": pickle.dumps(collections.OrderedDict(PlayMusic=0, SetAlarm=1)),
         "tasks.yml": _TASK + "  label_map_or_file: mini/intent_labels.joblib\n"},
        'build_experiment("tasks.yml", encoder="tiny-bert")', "DataFormatError",
        shown={"mini/intent_labels.joblib": "(a pickle of a collections.OrderedDict, not of a plain dict)"}),
    "training-option": Scenario(
        {}, 'TrainerConfig.from_dict({"learning_rate": 1e-4})', "ValueError"),
    "training-value": Scenario(
        {}, 'TrainerConfig(sampler="temperature", temperature=0)', "ValueError"),
    "training-diverged": Scenario(
        {**SNIPS_MINI, "tasks.yml": _TASK},
        'model, groups = build_experiment("tasks.yml", encoder="tiny-bert")\n'
        'config = TrainerConfig(max_steps=50, encoder_lr=1e30, classifier_lr=1e30, progress=False)\n'
        'Trainer(model, groups, config).fit()', "TrainingDiverged"),
    # ---------------------------------------------------------------- data files
    "jointbert-tag-count": Scenario(
        {"snips/dev/seq.in": "add this song to my playlist\nbook a table for two\n",
         "snips/dev/seq.out": "O O O O O B-playlist_owner B-playlist\nO O O O B-party_size_number\n",
         "snips/dev/label": "AddToPlaylist\nBookRestaurant\n"},
        'read_jointbert("snips/dev")', "DataFormatError"),
    "jointbert-line-count": Scenario(
        {"snips/dev/seq.in": "play jazz\nbook a table for two\nwake me at seven\n",
         "snips/dev/seq.out": "O B-genre\nO O O O B-party_size_number\n",
         "snips/dev/label": "PlayMusic\nBookRestaurant\nSetAlarm\n"},
        'read_jointbert("snips/dev")', "DataFormatError"),
    "jointbert-missing-file": Scenario(
        {"snips/dev/seq.in": "play jazz\n", "snips/dev/seq.out": "O B-genre\n"},
        'read_jointbert("snips/dev")', "DataFormatError"),
    "jointbert-unknown-label": Scenario(
        {"snips/dev/seq.in": "play jazz\n", "snips/dev/seq.out": "O B-genre\n",
         "snips/dev/label": "PlayMusik\n",
         "snips/intent_label.txt": "PlayMusic\nSetAlarm\nBookRestaurant\n"},
        'read_jointbert("snips/dev", intent_labels="snips/intent_label.txt")',
        "DataFormatError"),
    "encoding": Scenario(
        {"snips/dev/seq.in": "play jazz\nbook a table at the caf\xe9\n".encode("latin-1"),
         "snips/dev/seq.out": "O B-genre\nO O O O O B-restaurant_name\n",
         "snips/dev/label": "PlayMusic\nBookRestaurant\n"},
        'read_jointbert("snips/dev")', "DataFormatError",
        shown={"snips/dev/seq.in": "play jazz\nbook a table at the caf\xe9    <- saved as Latin-1"}),
    "empty-file": Scenario(
        {"labels.txt": "\n\n"}, 'read_label_file("labels.txt")', "DataFormatError"),
    "label-duplicate": Scenario(
        {"labels.txt": "PlayMusic\nSetAlarm\nPlayMusic\n"},
        'read_label_file("labels.txt")', "DataFormatError"),
    "label-pickle": Scenario(
        {"labels.pkl": b"\x80\x04\x95\x00"}, 'read_label_file("labels.pkl")', "DataFormatError",
        shown={"labels.pkl": "(a pickle file, cut short)"}),
    "conll-columns": Scenario(
        {"conll2003/dev.txt": "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP\n"},
        'read_conll("conll2003/dev.txt")', "DataFormatError"),
    "table-missing-column": Scenario(
        {"reviews.csv": "sentence,label\ngreat phone,pos\nbattery died,neg\n"},
        'read_table("reviews.csv", columns=["text", "label"])', "DataFormatError"),
    "table-quote": Scenario(
        {"pairs.tsv": 'Quality\t#1 String\t#2 String\n'
         '1\t"Yes" he said.\tHe agreed.\n0\tIt rained.\tThe sun shone.\n'},
        'read_table("pairs.tsv")', "DataFormatError"),
    "table-bom": Scenario(
        {"pairs.tsv": "\ufeffQuality\t#1 String\t#2 String\n1\tA.\tB.\n"},
        'read_table("pairs.tsv")', "DataFormatError",
        shown={"pairs.tsv": "<BOM>Quality\t#1 String\t#2 String\n1\tA.\tB."}),
    "jsonl-bad-line": Scenario(
        {"train.jsonl": '{"text": "great phone", "label": "pos"}\n'
         '{"text": "battery died", "label": neg}\n'},
        'read_table("train.jsonl")', "DataFormatError"),
    "hierarchical-empty-level": Scenario(
        {"train.csv": "Title,Text,Cat1,Cat2,Cat3\n"
         "Dog bowl,Steel bowl,pet supplies,dogs,feeding\n"
         "Cat toy,Feather wand,pet supplies,,toys\n"},
        'read_hierarchical_table("train.csv", ["Title", "Text"], ["Cat1", "Cat2", "Cat3"])',
        "DataFormatError"),
    "trec-label": Scenario(
        {"trec/train_5500.label": "LOC:city What is the capital of Peru ?\n"
         "NUM What year did the war end ?\n"},
        'read_trec("trec/train_5500.label")', "DataFormatError"),
    # ---------------------------------------------------------------- encoders, checkpoints
    "encoder-missing": Scenario(
        {}, 'load_encoder("roberta-base")', "EncoderNotAvailable"),
    "encoder-unknown": Scenario(
        {}, 'load_encoder("bert-tiny")', "EncoderNotAvailable"),
    "checkpoint-missing": Scenario(
        {}, 'load_model("runs/snips")', "CheckpointError"),
    "checkpoint-pickle": Scenario(
        {"downloaded/pytorch_model.bin": b"\x80\x02", "downloaded/vocab.txt": "[PAD]\n"},
        'load_model("downloaded")', "CheckpointError", shown={
            "downloaded/pytorch_model.bin": "(a pickled PyTorch state dict)"}),
    # ---------------------------------------------------------------- command line
    "cli-set": Scenario(
        {"tasks.yml": _TASK}, "$ mtl-lib train tasks.yml --out runs/x --set epochs=0",
        "exit 2"),
    "cli-taskfile": Scenario(
        {}, "$ mtl-lib train snips.yaml --out runs/snips", "exit 2"),
    "cli-checkpoint": Scenario(
        {}, "$ mtl-lib evaluate runs/snips --split dev", "exit 2"),
}

# Names the shown code may use, resolved lazily (importing mtl_lib pulls in torch).
_NAMESPACE = {
    "load_task_file": "mtl_lib", "build_experiment": "mtl_lib", "TrainerConfig": "mtl_lib",
    "Trainer": "mtl_lib",
    "load_encoder": "mtl_lib", "load_model": "mtl_lib",
    "read_jointbert": "mtl_lib.data", "read_label_file": "mtl_lib.data",
    "read_conll": "mtl_lib.data", "read_table": "mtl_lib.data", "read_trec": "mtl_lib.data",
    "read_hierarchical_table": "mtl_lib.data",
}

_CACHE: dict[str, Outcome] = {}


@contextlib.contextmanager
def _quiet_stdout():
    """Silence stdout at the file-descriptor level (the tokenizers trainer writes there)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def imports_for(code: str) -> list[str]:
    """``from module import name`` lines for the names ``code`` uses, as a user writes them."""
    by_module: dict[str, list[str]] = {}
    for name, module in _NAMESPACE.items():
        if f"{name}(" in code or f"{name}." in code:
            by_module.setdefault(module, []).append(name)
    return [f"from {m} import {', '.join(sorted(ns))}" for m, ns in sorted(by_module.items())]


def _run_cli(line: str) -> tuple[str, str]:
    import shlex

    from mtl_lib.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(shlex.split(line[2:])[1:])
    return err.getvalue().rstrip("\n"), f"exit {status}"


def run(name: str) -> Outcome:
    """Run scenario ``name`` (once per process) and return what the user sees."""
    if name in _CACHE:
        return _CACHE[name]
    import importlib

    sc = SCENARIOS[name]
    old = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="mtl-docs-") as tmp:
        for rel, content in sc.files.items():
            path = Path(tmp) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        os.chdir(tmp)
        try:
            if sc.code.startswith("$ "):
                message, error = _run_cli(sc.code)
            else:
                names = {n: getattr(importlib.import_module(m), n) for n, m in _NAMESPACE.items()}
                try:
                    with _quiet_stdout():
                        exec(sc.code, names)  # noqa: S102 - our own fixed snippets
                except Exception as err:  # noqa: BLE001 - we want whatever the user would get
                    message, error = str(err), type(err).__name__
                else:
                    message, error = "", "no error"
        finally:
            os.chdir(old)
    message = message.replace(tmp + os.sep, "").replace(tmp, ".")
    _CACHE[name] = Outcome(sc, message, error)
    return _CACHE[name]
