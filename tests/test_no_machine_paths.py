"""Committed results, docs and lessons hold repo-relative paths, never this machine's."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mtl_lib import data_root

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("bench/results/", "docs/", "notebooks/", "README.md", "examples/")


def test_no_committed_file_names_this_machines_folders():
    folders = {ROOT, ROOT.parent, Path(data_root()).resolve()}
    machine = {str(f) for f in folders if len(f.parts) > 2}  # not "/" or "/home": too common to mean us
    files = subprocess.run(["git", "ls-files", *CHECKED], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    assert len(files) > 50
    found = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".png", ".jpg", ".safetensors"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{name}: {m}" for m in machine if m + "/" in text or f'"{m}"' in text]
    assert not found, "absolute paths of this machine in committed files:\n" + "\n".join(found)
