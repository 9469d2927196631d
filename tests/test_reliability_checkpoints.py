"""Reliability: untrusted checkpoints and label maps never run code.

A pickle can execute anything when it is loaded. Each test plants a payload — an object whose
``__reduce__`` creates a marker file when unpickled — where a careless loader would unpickle
it: ``pytorch_model.bin`` / ``optimizer.pt`` (``torch.save`` files) and ``*.pkl`` files in a
checkpoint, a pickled label map referenced from a task file, and remote code (``auto_map``) in
the encoder's config. Loading must either ignore the planted file (never open it) or refuse
with a clear error naming it, and the marker file must never appear. Control tests show that
each payload does create its marker when it is unpickled, so the checks can fail.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mtl_lib import (
    CheckpointError,
    DataFormatError,
    Predictor,
    Trainer,
    build_experiment,
    build_groups,
    load_model,
    load_task_file,
    snips_tasks,
)
from mtl_lib.cli import main
from mtl_lib.training.checkpoint import restore_training

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
CONFIG = {"batch_size": 8, "progress": False, "eval_every": 10**6}


class Payload:
    """Unpickling this creates ``marker`` (a stand-in for running arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickle_payload(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"labels": ["a", "b"], "x": Payload(marker)}))
    return path


def torch_payload(path: Path, marker: Path) -> Path:
    torch.save({"heads.intent.linear.weight": torch.zeros(2), "boom": Payload(marker)}, path)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained run directory (best/ and last/) on tiny SNIPS, and its groups."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("untrusted")
    model, groups = build_experiment(snips_tasks(max_examples=32), "tiny-bert")
    Trainer(model, groups, {**CONFIG, "max_steps": 2, "output_dir": str(root / "run")}).fit()
    return root / "run", groups


@pytest.fixture
def ckpt(run, tmp_path) -> Path:
    """A private copy of the run's ``last`` checkpoint, to plant things in."""
    dst = tmp_path / "ckpt"
    shutil.copytree(run[0] / "last", dst)
    return dst


def fresh_trainer(ck: Path) -> Trainer:
    model = load_model(ck)
    groups = build_groups(list(model.tasks.values()), model.encoder.tokenizer)
    return Trainer(model, groups, {**CONFIG, "max_steps": 4})


def one_error_line(argv: list[str], capfd) -> str:
    capfd.readouterr()
    code = main(argv)
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --------------------------------------------------------------------------- controls


def test_control_the_payloads_do_run_when_unpickled(tmp_path):
    """Without these, "the marker never appears" would prove nothing."""
    m1, m2 = tmp_path / "m1", tmp_path / "m2"
    pickle.loads(pickle_payload(tmp_path / "a.pkl", m1).read_bytes())
    assert m1.exists()
    torch.load(torch_payload(tmp_path / "b.bin", m2), weights_only=False)
    assert m2.exists()
    with pytest.raises(pickle.UnpicklingError):  # what any torch.load here would have to use
        torch.load(torch_payload(tmp_path / "c.bin", tmp_path / "m3"), weights_only=True)
    assert not (tmp_path / "m3").exists()


# --------------------------------------------------------------------------- checkpoints


def test_pickles_planted_next_to_a_checkpoint_are_never_opened(ckpt, tmp_path, capfd):
    marker = tmp_path / "PWNED"
    torch_payload(ckpt / "pytorch_model.bin", marker)
    torch_payload(ckpt / "optimizer.pt", marker)
    pickle_payload(ckpt / "training_args.pkl", marker)
    torch_payload(ckpt / "encoder" / "pytorch_model.bin", marker)
    pickle_payload(ckpt / "encoder" / "tokenizer.pkl", marker)
    model = load_model(ckpt)  # reads model.safetensors, nothing else
    saved = load_file(str(ckpt / "model.safetensors"))
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    restore_training(fresh_trainer(ckpt), ckpt)  # reads optimizer.safetensors
    Predictor.from_checkpoint(ckpt).predict(["play some jazz"])
    capfd.readouterr()
    assert main(["predict", str(ckpt), "-i", str(write(tmp_path / "in.txt", "play jazz\n"))]) == 0
    assert not marker.exists()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_weights_only_as_a_pickle_are_refused_naming_the_file(ckpt, tmp_path, capfd, kind):
    marker = tmp_path / "PWNED"
    (ckpt / "model.safetensors").unlink()
    plant = torch_payload if kind == "torch" else pickle_payload
    plant(ckpt / "pytorch_model.bin", marker)
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin.*pickle"):
        load_model(ckpt)
    line = one_error_line(["evaluate", str(ckpt)], capfd)
    assert "pytorch_model.bin" in line and "pickle" in line
    assert not marker.exists()


def test_optimizer_only_as_a_pickle_is_refused_naming_the_file(ckpt, tmp_path, capfd):
    marker = tmp_path / "PWNED"
    (ckpt / "optimizer.safetensors").unlink()
    torch_payload(ckpt / "optimizer.pt", marker)
    with pytest.raises(CheckpointError, match=r"optimizer\.pt.*pickle"):
        restore_training(fresh_trainer(ckpt), ckpt)
    assert not marker.exists()


def test_a_directory_holding_only_a_pickle_is_refused_naming_it(tmp_path, capfd):
    marker = tmp_path / "PWNED"
    bare = tmp_path / "downloaded-model"
    bare.mkdir()
    torch_payload(bare / "pytorch_model.bin", marker)
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin.*pickle"):
        load_model(bare)
    line = one_error_line(["predict", str(bare)], capfd)
    assert "pytorch_model.bin" in line
    assert not marker.exists()


def test_a_pickle_renamed_to_safetensors_is_rejected_by_the_parser(run, ckpt, tmp_path):
    marker = tmp_path / "PWNED"
    trainer = fresh_trainer(ckpt)
    pickle_payload(ckpt / "optimizer.safetensors", marker)
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors.*not a safetensors file"):
        restore_training(trainer, ckpt)
    torch_payload(ckpt / "model.safetensors", marker)
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*not a safetensors file"):
        load_model(ckpt)
    assert not marker.exists()


def test_remote_code_in_the_encoder_config_is_not_executed(ckpt, tmp_path, capfd):
    """transformers runs a model's own Python code only with trust_remote_code=True."""
    marker = tmp_path / "PWNED"
    (ckpt / "encoder" / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from transformers import BertConfig, BertModel\n"
        "class EvilConfig(BertConfig):\n    pass\n"
        "class EvilModel(BertModel):\n    config_class = EvilConfig\n")
    for name in ("config.json", "tokenizer_config.json"):
        cfg = json.loads((ckpt / "encoder" / name).read_text())
        cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel",
                           "AutoTokenizer": ["evil.EvilTokenizer", None]}
        (ckpt / "encoder" / name).write_text(json.dumps(cfg))
    try:
        model = load_model(ckpt)
    except CheckpointError as err:  # refusing is fine too, as long as nothing ran
        assert "encoder" in str(err)
    else:
        assert type(model.encoder.model).__name__ == "BertModel"
    assert not marker.exists()


# --------------------------------------------------------------------------- label maps


@pytest.mark.parametrize("name", ["labels.pkl", "labels.joblib", "labels.txt"])
def test_pickled_label_map_in_a_task_file_is_refused(run, tmp_path, capfd, name):
    """`label_map_or_file: labels.pkl` (multi-task-NLP writes joblib pickles) is refused, and so
    is a pickle under a text name; the payload never runs."""
    marker = tmp_path / "PWNED"
    labels = pickle_payload(tmp_path / name, marker)
    tasks = {"intent": {"task_type": "SingleSenClassification", "format": "jointbert", "path": "snips",
                        "label_field": "intent", "label_map_or_file": str(labels), "max_examples": 32,
                        "config_name": "tiny-bert"}}
    tf = tmp_path / "tasks.yml"
    tf.write_text(yaml.safe_dump(tasks))
    with pytest.raises(DataFormatError, match=rf"{name}.*pickle") as info:
        build_groups(load_task_file(tf).tasks, load_model(run[0]).encoder.tokenizer)
    assert "arbitrary code" in str(info.value)
    out = tmp_path / "out"
    line = one_error_line(["train", str(tf), "--out", str(out)], capfd)
    assert name in line and "pickle" in line
    assert not out.exists() and not marker.exists()


@pytest.mark.slow
def test_cli_subprocess_refuses_a_pickle_only_checkpoint(tmp_path):
    marker = tmp_path / "PWNED"
    bare = tmp_path / "model"
    bare.mkdir()
    torch_payload(bare / "pytorch_model.bin", marker)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "mtl_lib.cli", "predict", str(bare)], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "pytorch_model.bin" in lines[0] and "pickle" in lines[0]
    assert not marker.exists()
