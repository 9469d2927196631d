"""Worker processes for tests/test_reliability_crash.py (run as a script, never imported by pytest).

Modes
-----
``killable OUT``
    Builds a tiny SNIPS trainer, then serves commands read from stdin, one per line:

    ``fork``    fork a child that resumes from ``OUT/last`` (if any) and trains with a
                checkpoint after every step, printing ``saved <step>`` after each; the
                parent prints ``child <pid>`` and, once the test has SIGKILLed the child,
                ``dead <pid>``.
    ``window``  the same, but the child kills itself (SIGKILL) between the two renames of
                ``atomic_directory`` (``last`` moved away, the new one not yet in place).
    ``quit``    exit.

    Forked children share the parent's tokenizer and architecture, so every child can resume
    the previous child's checkpoint.

``train OUT STEPS``
    Saves the initial model to ``OUT/init``, then trains ``STEPS`` steps with
    ``output_dir=OUT``, printing ``step <k>`` after each (and sleeping a little, so that the
    test can interrupt it mid-run). Exits 0 after ``fit`` returns.

``resume OUT STEPS``
    From ``OUT/init``: trains ``STEPS`` steps uninterrupted (saved to ``OUT/reference``), and
    resumes ``OUT/last`` to ``STEPS`` steps (saved as ``OUT/last``), each on a model rebuilt with
    ``load_model`` so that both runs use the interrupted run's own tokenizer.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # we fork

import torch  # noqa: E402

torch.set_num_threads(1)  # same arithmetic in every process; and the CPU is shared

from mtl_lib import Trainer, build_experiment, load_model, snips_tasks  # noqa: E402
from mtl_lib.experiment import build_groups  # noqa: E402
from mtl_lib.models.multitask import save_model  # noqa: E402
from mtl_lib.models.safe_files import resolve_checkpoint  # noqa: E402

EXAMPLES = 48
CONFIG = {"batch_size": 8, "encoder_lr": 1e-3, "classifier_lr": 5e-3, "eval_every": 10**6,
          "progress": False, "seed": 7}


def say(*parts) -> None:
    print(*parts, flush=True)


def killable(out: Path) -> None:
    model, groups = build_experiment(snips_tasks(max_examples=EXAMPLES), "tiny-bert")
    say("ready")
    for command in sys.stdin:
        command = command.strip()
        if command == "quit":
            return
        pid = os.fork()
        if pid == 0:  # child: never returns
            try:
                _child(model, groups, out, kill_in_window=command == "window")
            finally:
                os._exit(3)
        say("child", pid)
        os.waitpid(pid, 0)
        say("dead", pid)


def _child(model, groups, out: Path, kill_in_window: bool) -> None:
    trainer = Trainer(model, groups, {**CONFIG, "max_steps": 10**6, "save_every": 1, "output_dir": str(out)})
    original_save = trainer.save

    def save(path, *args, **kwargs):
        result = original_save(path, *args, **kwargs)
        say("saved", trainer.step)
        return result

    trainer.save = save
    if kill_in_window:
        real_replace = os.replace

        def replace(src, dst):
            real_replace(src, dst)
            if Path(src).name == "last":  # the old checkpoint was just moved aside: die here
                os.kill(os.getpid(), signal.SIGKILL)

        os.replace = replace
    try:
        resume = resolve_checkpoint(out / "last")
    except Exception:
        resume = None
    trainer.fit(resume_from=resume)


def train(out: Path, steps: int) -> None:
    model, groups = build_experiment(snips_tasks(max_examples=EXAMPLES), "tiny-bert")
    save_model(model, out / "init")

    class Report:
        def on_step_end(self, trainer, record):
            if record["task"] == groups[0].tasks[-1].name:  # once per step
                say("step", trainer.step)
                time.sleep(0.05)

    Trainer(model, groups, {**CONFIG, "max_steps": steps, "output_dir": str(out)},
            callbacks=[Report()]).fit()
    say("finished")


def resume(out: Path, steps: int) -> None:
    reference = load_model(out / "init")
    groups = build_groups(list(reference.tasks.values()), reference.encoder.tokenizer)
    Trainer(reference, groups, {**CONFIG, "max_steps": steps}).fit()
    save_model(reference, out / "reference")
    resumed = load_model(out / "init")
    groups = build_groups(list(resumed.tasks.values()), resumed.encoder.tokenizer)
    trainer = Trainer(resumed, groups, {**CONFIG, "max_steps": steps, "output_dir": str(out)})
    trainer.fit(resume_from=out / "last")
    say("resumed", trainer.step)


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "killable":
        killable(out)
    elif mode == "train":
        train(out, int(sys.argv[3]))
    elif mode == "resume":
        resume(out, int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
