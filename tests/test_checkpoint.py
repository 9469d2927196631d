"""Checkpoints: exact resume in a fresh process, identical metrics after reload, no pickles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from mtl_lib.evaluation.evaluate import evaluate
from mtl_lib.evaluation.predict import Predictor
from mtl_lib.experiment import build_groups
from mtl_lib.models.multitask import load_model, save_model
from mtl_lib.models.safe_files import PICKLE_SUFFIXES
from mtl_lib.training.checkpoint import restore_training
from mtl_lib.training.history import History
from mtl_lib.training.trainer import Trainer

SCRIPTS = Path(__file__).parent / "scripts"
# eval at step 3 and 6: evaluation in the middle must not disturb the random streams
CONFIG = {"max_steps": 8, "batch_size": 16, "eval_every": 3, "seed": 7, "classifier_lr": 5e-3,
          "progress": False}


class StopAt:
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer, record) -> None:
        if trainer.step >= self.step:
            trainer.should_stop = True


def _rows(history: History) -> tuple[list, list]:
    train = [(r["step"], r["task"], r["loss"], r["lr"]) for r in history.train_rows()]
    evals = [(r["step"], r["task"], r["metric"], r["value"]) for r in history.eval_rows()]
    return train, evals


@pytest.mark.slow
def test_resume_in_a_fresh_process_gives_the_same_weights(tiny_snips, make_snips_model, tmp_path):
    _, groups = tiny_snips
    straight = make_snips_model()
    reference = Trainer(straight, groups, CONFIG).fit()  # 8 steps in one go

    first = make_snips_model()  # the same run, stopped after 4 steps with a checkpoint
    Trainer(first, groups, CONFIG, output_dir=str(tmp_path / "run"), callbacks=[StopAt(4)]).fit()
    assert json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())["step"] == 4

    # a different hash seed in the new process: nothing may depend on set/dict iteration order
    env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "resume.py"), str(tmp_path / "run" / "last"), str(tmp_path / "resumed"),
         json.dumps({**CONFIG, "max_examples": groups[0].tasks[0].max_examples})],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed to step 8" in proc.stdout

    resumed = load_file(str(tmp_path / "resumed" / "weights.safetensors"))
    expected = straight.state_dict()
    assert resumed.keys() == expected.keys()
    different = [k for k in expected if not torch.equal(resumed[k], expected[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    assert _rows(History.from_json(tmp_path / "resumed" / "history.json")) == _rows(reference)


def test_reloaded_checkpoint_reproduces_its_metrics_exactly(trained_run):
    run_dir, trainer = trained_run
    final = trainer.history.last_metrics()
    assert final == trainer.evaluate("dev")
    for ckpt in (run_dir / "last", run_dir / "best", run_dir):
        model = load_model(ckpt)
        assert not model.training
        # data re-read and re-encoded with the checkpoint's own tokenizer and task specs
        groups = build_groups(list(model.tasks.values()), model.encoder.tokenizer)
        assert evaluate(model, groups, "dev") == final
        assert evaluate(model, trainer.groups, "dev") == final
    ours = trainer.model.state_dict()
    loaded = load_model(run_dir / "last").state_dict()
    assert all(torch.equal(loaded[k], ours[k]) for k in ours)


def test_reloaded_tokenizer_encodes_like_the_original(trained_run):
    run_dir, trainer = trained_run
    tok = load_model(run_dir / "last").encoder.tokenizer
    words = [r["words"] for r in trainer.groups[0].records["dev"]]
    ours = trainer.model.encoder.tokenizer(words, is_split_into_words=True)
    theirs = tok(words, is_split_into_words=True)
    assert ours["input_ids"] == theirs["input_ids"]
    assert [ours.word_ids(i) for i in range(len(words))] == [theirs.word_ids(i) for i in range(len(words))]


def test_checkpoint_holds_no_pickle(trained_run):
    run_dir, _ = trained_run
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert files
    seen = set()
    for path in files:
        assert path.suffix not in PICKLE_SUFFIXES, path
        head = path.read_bytes()[:2]
        assert not (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")), path
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as f:
                assert list(f.keys())  # a real safetensors file
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix != ".png":
            path.read_text(encoding="utf-8")  # tokenizer vocab etc.: plain text
        seen.add(path.relative_to(run_dir).parts[-1])
    assert {"config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json",
            "history.json"} <= seen


def test_optimizer_and_trainer_state_round_trip(trained_run, tiny_snips, make_snips_model):
    run_dir, trainer = trained_run
    _, groups = tiny_snips
    fresh = Trainer(make_snips_model(), groups, trainer.config)
    restore_training(fresh, run_dir / "last")
    a, b = trainer.optimizer.state_dict(), fresh.optimizer.state_dict()
    assert a["state"].keys() == b["state"].keys() and len(a["state"]) > 0
    for idx, st in a["state"].items():
        assert st.keys() == b["state"][idx].keys()
        for key, value in st.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["state"][idx][key])), (idx, key)
    for ga, gb in zip(a["param_groups"], b["param_groups"]):
        assert {k: list(v) if isinstance(v, tuple) else v for k, v in ga.items()} == \
            {k: list(v) if isinstance(v, tuple) else v for k, v in gb.items()}
    assert fresh.scheduler.state_dict()["last_epoch"] == trainer.scheduler.state_dict()["last_epoch"] == 4
    sa, sb = trainer.state_dict(), fresh.state_dict()
    assert (sb["step"], sb["positions"], sb["callbacks"]) == (sa["step"], sa["positions"], sa["callbacks"])
    assert sb["callbacks"]["checkpoint"]["best_score"] is not None
    assert fresh.history.records == json.loads(json.dumps(trainer.history.records))


def test_save_model_without_optimizer_is_enough_to_predict(trained_run, tmp_path):
    _, trainer = trained_run
    path = save_model(trainer.model, tmp_path / "model")
    assert not (path / "optimizer.safetensors").exists()
    texts = ["play some jazz", "what is the weather in paris"]
    assert Predictor.from_checkpoint(path).predict(texts) == Predictor(trainer.model).predict(texts)
