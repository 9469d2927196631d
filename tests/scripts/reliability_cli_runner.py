"""Run many ``mtl-lib`` commands, each in its own process, sharing one warm interpreter.

Usage: ``python reliability_cli_runner.py CASES_JSON RESULTS_JSON``

``CASES_JSON`` is a list of ``{"id", "argv", "cwd", "stdout", "stderr"}``. For each case this
process forks; the child points its file descriptors 0/1/2 at /dev/null and the given files,
runs ``mtl_lib.cli`` as ``__main__`` with ``runpy`` (what ``python -m mtl_lib.cli`` does) and
exits the way the interpreter would: with ``SystemExit``'s code, or after printing the
traceback of any other exception with status 1. Only the imports (torch, transformers: ~5 s)
are shared, which is what makes the full bad-input matrix of tests/test_reliability_inputs.py
affordable. ``RESULTS_JSON`` receives ``{id: exit status}``.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # we fork

# The shared, expensive part: torch, transformers and the library's modules (mtl_lib itself
# imports its public names lazily, so name them). Not mtl_lib.cli itself, which runpy must
# execute fresh as __main__ (as `python -m` does; importing it first would make runpy warn).
import mtl_lib.evaluation.predict  # noqa: E402, F401
import mtl_lib.experiment  # noqa: E402, F401
import mtl_lib.training.trainer  # noqa: E402, F401
import mtl_lib.ui.plots  # noqa: E402, F401


def _child(case: dict) -> int:
    os.chdir(case["cwd"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY),
                            (1, case["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        new = os.open(path, flags, 0o644)
        os.dup2(new, fd)
        os.close(new)
    sys.argv = ["mtl-lib", *case["argv"]]
    try:
        runpy.run_module("mtl_lib.cli", run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1


def run(case: dict) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = _child(case)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        cases = json.load(fh)
    results = {case["id"]: run(case) for case in cases}
    with open(sys.argv[2], "w") as fh:
        json.dump(results, fh)
