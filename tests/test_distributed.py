"""DDP under torchrun (2 processes, gloo on CPU) against one process with the same global batch."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mtl_lib.models.multitask import load_model

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"
TORCHRUN = Path(sys.executable).parent / "torchrun"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not TORCHRUN.exists() and shutil.which("torchrun") is None, reason="no torchrun"),
]


def _single_process_run(out: Path, diag: Path) -> None:
    spec = importlib.util.spec_from_file_location("ddp_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.run(str(out), str(diag))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    torchrun = str(TORCHRUN) if TORCHRUN.exists() else shutil.which("torchrun")
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", str(SCRIPT),
                           str(tmp / "ddp_out"), str(tmp / "ddp_diag")],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    _single_process_run(tmp / "one_out", tmp / "one_diag")
    return tmp


def test_each_rank_trains_on_its_half_of_the_same_global_batches(runs):
    one = json.loads((runs / "one_diag" / "shards-rank0.json").read_text())
    r0 = json.loads((runs / "ddp_diag" / "shards-rank0.json").read_text())
    r1 = json.loads((runs / "ddp_diag" / "shards-rank1.json").read_text())
    assert len(one) == len(r0) == len(r1) == 6
    for a, b, c in zip(one, r0, r1):
        assert a["global"] == b["global"] == c["global"] and len(a["global"]) == 16
        assert a["mine"] == a["global"]  # one process: the whole batch
        assert len(b["mine"]) == len(c["mine"]) == 8
        assert b["mine"] + c["mine"] == a["global"]


def test_ddp_matches_one_process_with_the_same_global_batch(runs):
    # Not bit-identical: each rank pads its 8 examples to their own longest (not the 16's), and
    # gloo sums the two ranks' gradients in another order than one backward pass over 16; both
    # change float rounding (~1e-7 relative). AdamW divides by sqrt(v), which can magnify such
    # rounding in coordinates whose gradient is ~0, so the weights are compared relative to how
    # far training moved them, the first gradients directly.
    g_one = load_file(str(runs / "one_diag" / "grads-rank0.safetensors"))
    g_ddp = load_file(str(runs / "ddp_diag" / "grads-rank0.safetensors"))
    assert g_one.keys() == g_ddp.keys() and len(g_one) > 10
    for name in g_one:  # DDP averaged the two halves' gradients into the full batch's gradient
        torch.testing.assert_close(g_ddp[name], g_one[name], rtol=1e-4, atol=1e-7, msg=name)

    w_one = load_file(str(runs / "one_diag" / "final-rank0.safetensors"))
    w_ddp = load_file(str(runs / "ddp_diag" / "final-rank0.safetensors"))
    start = load_file(str(runs / "one_diag" / "initial-rank0.safetensors"))
    assert w_one.keys() == w_ddp.keys() == start.keys()
    floats = [k for k in w_one if w_one[k].is_floating_point()]
    moved = torch.sqrt(sum(((w_one[k] - start[k]) ** 2).sum() for k in floats))
    diff = torch.sqrt(sum(((w_one[k] - w_ddp[k]) ** 2).sum() for k in floats))
    assert moved > 0
    assert diff / moved < 1e-4, (float(diff), float(moved))  # measured: ~2e-6
    for k in w_one:
        torch.testing.assert_close(w_ddp[k], w_one[k], rtol=1e-4, atol=1e-6, msg=k)
    # the uncertainty weighting's log-variances are trained outside the DDP model
    s_one = load_file(str(runs / "one_diag" / "weighting-rank0.safetensors"))["log_vars"]
    s_ddp = [load_file(str(runs / "ddp_diag" / f"weighting-rank{r}.safetensors"))["log_vars"] for r in (0, 1)]
    assert not torch.equal(s_one, torch.zeros_like(s_one))
    assert torch.equal(s_ddp[0], s_ddp[1])  # the ranks agree
    torch.testing.assert_close(s_ddp[0], s_one, rtol=1e-4, atol=1e-6)


def test_ranks_stay_in_sync_and_only_rank_0_writes(runs):
    r0 = load_file(str(runs / "ddp_diag" / "final-rank0.safetensors"))
    r1 = load_file(str(runs / "ddp_diag" / "final-rank1.safetensors"))
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    assert sorted((runs / "ddp_diag" / "writes-rank0.txt").read_text().split()) == ["best", "last"]
    assert not (runs / "ddp_diag" / "writes-rank1.txt").exists()
    # nothing but the two checkpoints and the run marker (no temporary, lock or second-rank leftovers)
    assert sorted(p.name for p in (runs / "ddp_out").iterdir()) == ["best", "last", "run.json"]
    state = json.loads((runs / "ddp_out" / "last" / "trainer_state.json").read_text())
    assert state["step"] == 6


def test_ddp_checkpoint_loads_in_a_single_process(runs):
    model = load_model(runs / "ddp_out" / "last")
    r0 = load_file(str(runs / "ddp_diag" / "final-rank0.safetensors"))
    loaded = model.state_dict()
    assert loaded.keys() == r0.keys()
    assert all(torch.equal(loaded[k], r0[k]) for k in r0)  # no "module." prefixes, same weights
