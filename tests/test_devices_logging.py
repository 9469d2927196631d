"""Devices, mixed precision, ``log_every`` and the ``report_to`` loggers (CSV, TensorBoard).

The GPU branches (CUDA device choice, bf16 or fp16 + GradScaler there) run in bench/gpu.py on
a GPU machine; here they are checked by their rules, and fp16 + GradScaler trains for real on
the CPU.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

import mtl_lib.models.devices as devices
from mtl_lib.cli import main
from mtl_lib.evaluation.evaluate import evaluate
from mtl_lib.evaluation.predict import Predictor
from mtl_lib.models.devices import autocast_dtype, resolve_device
from mtl_lib.training.checkpoint import restore_training
from mtl_lib.training.config import TrainerConfig
from mtl_lib.training.loggers import COLUMNS
from mtl_lib.training.trainer import Trainer

HAS_CUDA = torch.cuda.is_available()
HAS_MPS = devices._mps_available()


# --------------------------------------------------------------------------- devices
def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") == resolve_device(None)
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(HAS_CUDA or HAS_MPS, reason="checks the errors of a machine without a GPU")
@pytest.mark.parametrize("name,message", [
    ("cuda", "CUDA is not available on this machine"), ("cuda:1", "CUDA is not available"),
    ("mps", "MPS is not available on this machine"), ("tpu", "not a device name"),
    ("meta", "mtl_lib runs on cpu, cuda or mps"),
])
def test_a_device_that_is_not_here_is_a_clear_error(name, message):
    with pytest.raises(ValueError, match=message):
        resolve_device(name)


def test_trainer_config_checks_the_device_name_without_torch():
    assert TrainerConfig(device="cuda:1").device == "cuda:1"
    for bad in ("gpu", "cuda:x", 3):
        with pytest.raises(ValueError, match="device must be"):
            TrainerConfig(device=bad)


def test_precision_rules(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(cpu) is None and autocast_dtype(torch.device("mps")) is None
    assert autocast_dtype(cpu, bf16=True) == torch.bfloat16 and autocast_dtype(cpu, fp16=True) == torch.float16
    with pytest.raises(ValueError, match="cannot both"):
        autocast_dtype(cpu, bf16=True, fp16=True)
    monkeypatch.setattr(devices, "_native_bf16", lambda: True)
    assert autocast_dtype(cuda) == torch.bfloat16  # Ampere and newer
    assert autocast_dtype(cuda, bf16=False) is None
    monkeypatch.setattr(devices, "_native_bf16", lambda: False)
    assert autocast_dtype(cuda) == torch.float16  # older GPUs: fp16 (with the GradScaler)
    assert autocast_dtype(cuda, fp16=False) is None and autocast_dtype(cuda, bf16=False) is None
    with pytest.raises(ValueError, match="bf16 and fp16 cannot both be true"):
        TrainerConfig(bf16=True, fp16=True)


def _dtype_seen(model) -> list[torch.dtype]:
    """Record the dtype of the intent head's output at each forward pass."""
    seen: list[torch.dtype] = []
    model.heads["intent"].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    return seen


def test_fp16_trains_with_a_grad_scaler_whose_state_is_checkpointed(tiny_snips, make_snips_model, tmp_path):
    _, groups = tiny_snips
    model = make_snips_model()
    seen = _dtype_seen(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, groups, max_steps=6, batch_size=16, fp16=True, device="cpu", progress=False,
                      eval_every=100, output_dir=str(tmp_path))
    assert trainer.autocast_dtype == torch.float16 and trainer.scaler.is_enabled()
    trainer.fit()  # overflowing steps are skipped by the scaler, never raised as divergence
    assert set(seen[:6]) == {torch.float16}
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    saved = json.loads((tmp_path / "last" / "trainer_state.json").read_text())["scaler"]
    assert saved["scale"] == trainer.scaler.get_scale()
    trainer.scaler.update(new_scale=1024.0)  # a scale no new scaler starts with
    trainer.save(tmp_path / "scaled")
    resumed = Trainer(make_snips_model(), groups, max_steps=8, batch_size=16, fp16=True, device="cpu",
                      progress=False, eval_every=100)
    restore_training(resumed, tmp_path / "scaled")
    assert resumed.scaler.get_scale() == 1024.0
    resumed.fit()
    assert resumed.step == 8


def test_bf16_option_and_fp32_default_on_cpu(tiny_snips, make_snips_model):
    _, groups = tiny_snips
    for options, dtype in (({"bf16": True}, torch.bfloat16), ({}, torch.float32)):
        model = make_snips_model()
        seen = _dtype_seen(model)
        trainer = Trainer(model, groups, max_steps=1, batch_size=8, device="cpu", progress=False, **options)
        trainer.fit()
        assert seen[0] == dtype and not trainer.scaler.is_enabled()


def test_predictor_and_evaluate_take_a_device(trained_run, tiny_snips):
    run, trainer = trained_run
    predictor = Predictor.from_checkpoint(run, device="cpu")
    assert next(predictor.model.parameters()).device == torch.device("cpu")
    assert predictor.predict("play some jazz")["intent"]["label"]
    _, groups = tiny_snips
    assert evaluate(predictor.model, groups, "dev", device="auto") == evaluate(predictor.model, groups, "dev")


@pytest.mark.skipif(HAS_CUDA, reason="checks the error of a machine without CUDA")
def test_cli_device_option(trained_run, tmp_path, capsys, monkeypatch):
    run, _ = trained_run
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json", "--device", "cpu"]) == 0
    on_cpu = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == on_cpu
    (tmp_path / "in.txt").write_text("play some jazz\n")
    assert main(["predict", str(run), "-i", str(tmp_path / "in.txt"), "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "play some jazz"
    import mtl_lib.experiment

    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the device was checked")

    monkeypatch.setattr(mtl_lib.experiment, "build_experiment", no_data)
    (tmp_path / "tasks.yml").write_text(TASKS)
    for argv in (["evaluate", str(run), "--device", "cuda"], ["predict", str(run), "--device", "cuda:0"],
                 ["train", str(tmp_path / "tasks.yml"), "--out", str(tmp_path / "o"), "--device", "cuda"],
                 ["demo", "--out", str(tmp_path / "o"), "--device", "cuda"]):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "CUDA is not available on this machine" in err, err
    assert not (tmp_path / "o").exists()


TASKS = "intent:\n  task_type: classification\n  path: snips\n  label_field: intent\n  max_examples: 8\n"


# --------------------------------------------------------------------------- log_every
def test_log_every_averages_each_tasks_loss_over_its_steps(tiny_snips, make_snips_model):
    _, groups = tiny_snips
    every = Trainer(make_snips_model(), groups, max_steps=8, batch_size=16, progress=False, eval_every=100).fit()

    class Count:
        rows = 0

        def on_step_end(self, trainer, record):
            Count.rows += 1

    trainer = Trainer(make_snips_model(), groups, max_steps=8, batch_size=16, progress=False, eval_every=100,
                      log_every=3, callbacks=[Count()])
    sparse = trainer.fit()
    assert sorted({r["step"] for r in sparse.train_rows()}) == [3, 6, 8]  # and the last step
    assert Count.rows == len(sparse.train_rows()) == 6  # on_step_end fires once per row
    windows = {3: [1, 2, 3], 6: [4, 5, 6], 8: [7, 8]}
    for task in ("intent", "slots"):
        losses = {r["step"]: r["loss"] for r in every.train_rows(task)}
        for r in sparse.train_rows(task):
            window = [losses[s] for s in windows[r["step"]]]
            assert r["loss"] == pytest.approx(sum(window) / len(window), rel=1e-6)
            assert r["lr"] == next(x["lr"] for x in every.train_rows(task) if x["step"] == r["step"])


def test_log_every_writes_the_last_partial_window_when_stopped_early(tiny_snips, make_snips_model):
    _, groups = tiny_snips

    class StopAt5:
        def on_batch_end(self, trainer):
            if trainer.step == 5:
                trainer.should_stop = True

    history = Trainer(make_snips_model(), groups, max_steps=20, batch_size=16, progress=False, eval_every=100,
                      log_every=4, callbacks=[StopAt5()]).fit()
    assert sorted({r["step"] for r in history.train_rows()}) == [4, 5]


# --------------------------------------------------------------------------- report_to
def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if v != ""} for r in rows]


def _as_csv(records: list[dict]) -> list[dict]:
    return [{k: str(v) for k, v in r.items() if k in COLUMNS} for r in records]


def test_csv_logger_writes_every_history_row_and_follows_a_resume(tiny_snips, make_snips_model, tmp_path):
    _, groups = tiny_snips

    class StopAt:
        def on_batch_end(self, trainer):
            if trainer.step == 3:
                trainer.should_stop = True

    config = dict(max_steps=6, batch_size=16, progress=False, eval_every=2, report_to=["csv"],
                  output_dir=str(tmp_path))
    first = Trainer(make_snips_model(), groups, callbacks=[StopAt()], **config)
    history = first.fit()
    assert _csv_rows(tmp_path / "log.csv") == _as_csv(history.records)
    assert {r["kind"] for r in history.records} == {"train", "eval"}
    resumed = Trainer(make_snips_model(), groups, **config)
    history = resumed.fit(resume_from=tmp_path / "last")
    assert _csv_rows(tmp_path / "log.csv") == _as_csv(history.records)
    assert max(int(r["step"]) for r in _csv_rows(tmp_path / "log.csv")) == 6


def test_report_to_needs_an_output_dir_and_a_known_name(tiny_snips, make_snips_model):
    _, groups = tiny_snips
    with pytest.raises(ValueError, match="report_to needs output_dir"):
        Trainer(make_snips_model(), groups, report_to=["csv"])
    with pytest.raises(ValueError, match="report_to must be one of csv, tensorboard, got 'wandb'"):
        TrainerConfig(report_to=["wandb"])
    assert TrainerConfig(report_to="csv").report_to == ["csv"]  # a single name, as Hugging Face allows


def test_a_missing_tensorboard_is_a_clear_error_before_any_work(tiny_snips, make_snips_model, tmp_path,
                                                                 monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    _, groups = tiny_snips
    with pytest.raises(ValueError, match=r"pip install 'mtl_lib\[tensorboard\]'"):
        Trainer(make_snips_model(), groups, report_to=["tensorboard"], output_dir=str(tmp_path / "a"))
    import mtl_lib.experiment

    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the loggers were checked")

    monkeypatch.setattr(mtl_lib.experiment, "build_experiment", no_data)
    (tmp_path / "tasks.yml").write_text(TASKS)
    assert main(["train", str(tmp_path / "tasks.yml"), "--out", str(tmp_path / "o"),
                 "--set", "report_to=[csv, tensorboard]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tensorboard needs the tensorboard package" in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed")
def test_tensorboard_logger_writes_the_history_as_scalars(tiny_snips, make_snips_model, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, groups = tiny_snips
    history = Trainer(make_snips_model(), groups, max_steps=4, batch_size=16, progress=False, eval_every=2,
                      report_to=["tensorboard"], output_dir=str(tmp_path)).fit()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss/intent", "train/loss/slots", "train/lr", "train/samples_per_s",
            "dev/intent/classification_accuracy", "dev/slots/seqeval_f1_score"} <= tags
    got = [(e.step, e.value) for e in events.Scalars("train/loss/slots")]
    want = [(r["step"], r["loss"]) for r in history.train_rows("slots")]
    assert [s for s, _ in got] == [s for s, _ in want]
    assert all(math.isclose(a, b, rel_tol=1e-6) for (_, a), (_, b) in zip(got, want))
    acc = [(e.step, e.value) for e in events.Scalars("dev/intent/classification_accuracy")]
    assert acc == [(r["step"], pytest.approx(r["value"])) for r in history.eval_rows("intent",
                                                                                     "classification_accuracy")]
