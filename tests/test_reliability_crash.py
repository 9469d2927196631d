"""Reliability: crashes, interrupts and divergence never cost more than the current step.

* SIGKILL a process while it trains with a checkpoint after every step (random moments,
  several times, plus deterministic kills between the two renames of ``atomic_directory``):
  the newest complete checkpoint always loads, is internally consistent (weights, optimiser,
  trainer state and history from the same step), and the next process resumes from it.
* SIGINT (Ctrl-C) during ``Trainer.fit`` finishes the step, leaves a resumable ``last``, and
  resuming to the planned number of steps gives bit-identical weights to an uninterrupted run.
* A NaN/inf loss, or a NaN gradient, stops training with ``TrainingDiverged`` naming the task
  and step; the last checkpoint on disk is the last good one and loads.

The subprocesses run ``tests/scripts/reliability_worker.py``.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mtl_lib import MultiTaskModel, Trainer, TrainingDiverged, load_model, snips_tasks, tiny_encoder
from mtl_lib.cli import main
from mtl_lib.experiment import build_groups
from mtl_lib.models.safe_files import resolve_checkpoint

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "scripts" / "reliability_worker.py"
sys.path.insert(0, str(WORKER.parent))
from reliability_worker import CONFIG, EXAMPLES  # noqa: E402

sys.path.remove(str(WORKER.parent))


class Worker:
    """A worker subprocess whose stdout lines arrive in a queue (read by a thread)."""

    def __init__(self, tmp: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        self.stderr_path = tmp / f"worker-{args[0]}.stderr"
        self.proc = subprocess.Popen([sys.executable, str(WORKER), *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=open(self.stderr_path, "w"),
                                     text=True, env=env)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def expect(self, word: str, timeout: float = 240, seen: list | None = None) -> str:
        """Lines until one starting with ``word`` (others go to ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"worker: no {word!r} line within {timeout} s; stderr:\n"
                                     f"{self.stderr()}") from None
            if line is None:
                raise AssertionError(f"worker exited before {word!r}; stderr:\n{self.stderr()}")
            if line.split()[:1] == [word]:  # (the tokenizer trainer prints blank lines)
                return line
            if seen is not None:
                seen.append(line)

    def stderr(self) -> str:
        return self.stderr_path.read_text()[-3000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def checkpoint_step(ck: Path) -> int:
    """The checkpoint's step, after checking that all its files describe that same step."""
    step = json.loads((ck / "trainer_state.json").read_text())["step"]
    optimizer = load_file(str(ck / "optimizer.safetensors"))
    adam_steps = {float(v) for k, v in optimizer.items() if k.endswith(".step")}
    assert adam_steps == {float(step)}, (step, adam_steps)  # AdamW counts its own steps
    history = json.loads((ck / "history.json").read_text())
    assert max(r["step"] for r in history) == step
    return step


# --------------------------------------------------------------------------- SIGKILL


@pytest.mark.slow
def test_sigkill_while_checkpointing_never_loses_the_previous_checkpoint(tmp_path):
    rng = random.Random(20261125)
    out = tmp_path / "run"
    rounds = ["fork", "fork", "window", "fork", "fork", "window", "window", "fork", "fork"]
    worker = Worker(tmp_path, "killable", str(out))
    stats = {"kills": 0, "mid_write": 0, "window": 0}
    try:
        worker.expect("ready")
        last_step = 0
        for command in rounds:
            seen: list[str] = []
            worker.send(command)
            pid = int(worker.expect("child").split()[1])
            if command == "fork":
                seen.append(worker.expect("saved", seen=seen))  # a checkpoint of this child exists
                time.sleep(rng.uniform(0.0, 0.4))
                os.kill(pid, signal.SIGKILL)
            worker.expect("dead", seen=seen)
            stats["kills"] += 1
            printed = [int(s.split()[1]) for s in seen if s.startswith("saved")]
            if command == "window":
                stats["window"] += 1
                assert not (out / "last").exists()  # killed between the two renames
                assert any(p.name.startswith(".last.old-") for p in out.iterdir())
                assert resolve_checkpoint(out).name.startswith(".last.old-")  # the run dir too
            elif (out / f".last.tmp-{pid}").exists():  # its half-written checkpoint is left behind
                stats["mid_write"] += 1
            ck = resolve_checkpoint(out / "last")
            step = checkpoint_step(ck)
            assert step >= max(printed, default=0), "a checkpoint reported as saved was lost"
            assert step >= last_step, "resuming went back in time"
            model = load_model(ck)
            assert all(torch.isfinite(p).all() for p in model.parameters())
            last_step = step
            # the kill times are random: on a busy machine none of the planned ones may land
            # inside a save, so keep killing (a bounded number of times) until one has
            if stats["kills"] == len(rounds) and not stats["mid_write"] and len(rounds) < 40:
                rounds.append("fork")
        worker.send("quit")
        assert worker.proc.wait(timeout=60) == 0
    finally:
        worker.close()
    assert stats["mid_write"] >= 1, stats  # at least one random kill landed inside a save
    assert last_step > 5, "the children made progress across the kills"
    # ... and a different process (this one) resumes from what is on disk
    ck = resolve_checkpoint(out / "last")
    model = load_model(ck)
    groups = build_groups(list(model.tasks.values()), model.encoder.tokenizer)
    trainer = Trainer(model, groups, {**CONFIG, "max_steps": last_step + 2, "output_dir": str(out)})
    trainer.fit(resume_from=ck)
    assert trainer.step == last_step + 2
    assert checkpoint_step(resolve_checkpoint(out / "last")) == last_step + 2
    assert (out / "last").is_dir()
    assert not [p.name for p in out.iterdir() if ".old-" in p.name], "stale copies are cleaned up"
    print(f"\nSIGKILL rounds: {stats}, final step {last_step}")


# --------------------------------------------------------------------------- SIGINT


@pytest.mark.slow
def test_sigint_leaves_a_resumable_checkpoint_and_resume_matches_uninterrupted(tmp_path):
    out, steps = tmp_path / "run", 24
    worker = Worker(tmp_path, "train", str(out), str(steps))
    try:
        worker.expect("step", timeout=300)
        worker.expect("step")
        worker.expect("step")
        worker.proc.send_signal(signal.SIGINT)  # Ctrl-C
        seen: list[str] = []
        worker.expect("finished", seen=seen)
        assert worker.proc.wait(timeout=60) == 0, worker.stderr()
    finally:
        worker.close()
    assert any(line.startswith("interrupted at step") for line in seen), seen
    interrupted = checkpoint_step(out / "last")
    assert 3 <= interrupted < steps

    resume = Worker(tmp_path, "resume", str(out), str(steps))
    try:
        assert resume.expect("resumed", timeout=300) == f"resumed {steps}"
        assert resume.proc.wait(timeout=60) == 0, resume.stderr()
    finally:
        resume.close()
    assert checkpoint_step(out / "last") == steps
    reference = load_file(str(out / "reference" / "model.safetensors"))
    resumed = load_file(str(out / "last" / "model.safetensors"))
    at_interrupt = load_model(out / "init").state_dict()
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference), \
        [k for k in reference if not torch.equal(reference[k], resumed[k])][:5]
    assert not all(torch.equal(reference[k], at_interrupt[k]) for k in reference)  # it did train


# --------------------------------------------------------------------------- divergence


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    enc = tiny_encoder("BERT")
    groups = build_groups(snips_tasks(max_examples=EXAMPLES), enc.tokenizer)
    return enc, groups


def make_trainer(tiny, out: Path, **options) -> Trainer:
    enc, groups = tiny
    model = MultiTaskModel.from_tasks(copy.deepcopy(enc), [t for g in groups for t in g.tasks])
    return Trainer(model, groups, {**CONFIG, "max_steps": 12, "save_every": 1, "output_dir": str(out),
                                   **options})


class Snapshot:
    """Keeps the weights as they are at the end of every step (what `save` writes next)."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def on_step_end(self, trainer, record) -> None:
        self.states[trainer.step] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def assert_last_good(out: Path, step: int, snapshot: Snapshot) -> None:
    ck = resolve_checkpoint(out / "last")
    assert checkpoint_step(ck) == step
    model = load_model(ck)
    state = model.state_dict()
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert all(torch.equal(state[k], snapshot.states[step][k]) for k in state)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_or_inf_loss_stops_with_task_and_step_and_keeps_last_good_checkpoint(tiny, tmp_path, value):
    out, snap = tmp_path / "run", Snapshot()
    trainer = make_trainer(tiny, out)
    trainer.callbacks.append(snap)

    def poison(module, inputs, output):  # the slots head goes bad at the 6th step
        return output * value if trainer.step == 5 else output

    trainer.model.heads["slots"].register_forward_hook(poison)
    with pytest.raises(TrainingDiverged, match=r"task 'slots'.* at step 6") as info:
        trainer.fit()
    assert "intent" not in str(info.value)
    assert_last_good(out, 5, snap)


def test_nan_gradient_with_finite_loss_does_not_reach_the_checkpoint(tiny, tmp_path):
    """A NaN that appears only in the backward pass must not be written as `last`."""
    out, snap = tmp_path / "run", Snapshot()
    trainer = make_trainer(tiny, out)
    trainer.callbacks.append(snap)
    weight = trainer.model.heads["intent"].linear.weight
    weight.register_hook(lambda grad: grad * float("nan") if trainer.step == 5 else grad)
    with pytest.raises(TrainingDiverged, match=r"step 6"):
        trainer.fit()
    assert trainer.step == 5
    assert_last_good(out, 5, snap)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())  # not stepped either


def test_huge_learning_rate_diverges_cleanly_in_the_cli(tmp_path, capfd):
    """`mtl-lib train --set classifier_lr=1e30`: one error line naming task and step, exit 2."""
    tasks = {name: {**{k: v for k, v in spec.to_dict().items() if k in ("task_type", "format", "path",
                                                                       "label_field", "label_map_or_file",
                                                                       "max_examples")},
                    "config_name": "tiny-bert"}
             for name, spec in ((t.name, t) for t in snips_tasks(max_examples=EXAMPLES))}
    tasks["training"] = {"max_steps": 30, "batch_size": 8, "progress": False, "eval_every": 10**6,
                         "save_every": 1}
    tf = tmp_path / "tasks.yml"
    tf.write_text(yaml.safe_dump(tasks))
    out = tmp_path / "run"
    capfd.readouterr()
    code = main(["train", str(tf), "--out", str(out), "--set", "classifier_lr=1e30",
                 "--set", "encoder_lr=1e30"])
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and "Traceback" not in err, err
    error_lines = [ln for ln in lines if "error:" in ln]
    assert len(error_lines) == 1 and lines[-1] == error_lines[0], err
    assert "mtl-lib train: error:" in lines[-1] and "at step" in lines[-1]
    assert "'intent'" in lines[-1] or "'slots'" in lines[-1] or "gradient" in lines[-1]
    step = int(lines[-1].split("at step ")[1].split()[0].rstrip(";,"))
    if step > 1:  # an earlier step was saved: it is the last good one (measured: step 2 diverges)
        ck = resolve_checkpoint(out / "last")
        assert checkpoint_step(ck) == step - 1
        assert all(torch.isfinite(p).all() for p in load_model(ck).parameters())


# --------------------------------------------------------------------------- distributed

TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="no torchrun")
def test_nan_on_one_ddp_rank_stops_every_rank_and_the_checkpoint_resumes_in_one_process(tmp_path):
    """tests/test_distributed.py checks that only rank 0 writes and that its checkpoint loads;
    here rank 1 alone sees a NaN loss at step 4. Both ranks must stop with TrainingDiverged
    (not one raising while the other waits in DDP's all-reduce, or dies of a lost peer), and
    rank 0's step-3 checkpoint must load and resume in a single process."""
    out, bad_step = tmp_path / "run", 4
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": str(REPO)}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    script = REPO / "tests" / "scripts" / "reliability_ddp.py"
    reports = tmp_path / "reports"
    proc = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node=2", str(script), str(out),
                           str(reports), "1", str(bad_step)], env=env, capture_output=True, text=True, timeout=600)
    lines = [(reports / f"rank{r}.txt").read_text() if (reports / f"rank{r}.txt").exists() else "" for r in (0, 1)]
    assert all(ln.startswith("diverged: ") for ln in lines), (lines, proc.stderr[-3000:])
    assert all(f"at step {bad_step}" in ln and "'intent'" in ln for ln in lines), lines
    # (torchrun itself reports the workers' non-zero exit with a traceback of its own)
    worker_tracebacks = re.findall(r"\[rank\d\]:\s*Traceback", proc.stderr)
    assert not worker_tracebacks and "Connection closed" not in proc.stderr, proc.stderr[-3000:]
    ck = resolve_checkpoint(out / "last")
    assert checkpoint_step(ck) == bad_step - 1
    # no leftovers from either rank (run.json marks the run: see training/run_dir.py)
    assert sorted(p.name for p in out.iterdir()) == ["last", "run.json"]
    model = load_model(ck)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    groups = build_groups(list(model.tasks.values()), model.encoder.tokenizer)
    trainer = Trainer(model, groups, {"max_steps": bad_step + 1, "batch_size": 8, "progress": False,
                                      "eval_every": 10**6})
    trainer.fit(resume_from=ck)
    assert trainer.step == bad_step + 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
