"""The documentation: docstring examples run, the Sphinx site builds with ``-W``, and a page
with a warning makes that build fail.

The builds run on a copy of ``docs/`` (the rest of the repository is linked in), so the tests
never write into the working tree and can plant a broken page safely.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg"}
SEED_METRICS = ["classification_accuracy", "classification_f1_score", "seqeval_f1_score",
                "seqeval_precision", "seqeval_recall", "snips_f1_score", "snips_precision",
                "snips_recall", "classification_recall_score"]
SEED_CONFIG_NAMES = [
    "distilbert-base-uncased", "distilbert-base-cased", "bert-base-uncased", "bert-base-cased",
    "bert-large-uncased", "bert-large-cased", "roberta-base", "roberta-large", "albert-base-v1",
    "albert-large-v1", "albert-xlarge-v1", "albert-xxlarge-v1", "albert-base-v2",
    "albert-large-v2", "albert-xlarge-v2", "albert-xxlarge-v2", "xlnet-base-cased",
    "xlnet-large-cased"]
CHECKPOINT_KEYS = ["config", "hierarchy", "encoder_state_dict", "classifier_state_dict",
                   "optimizer_state_dict"]


def _copy_docs(tmp_path: Path) -> Path:
    """``tmp/docs`` (a copy, without build output) next to links to the rest of the repo."""
    shutil.copytree(DOCS, tmp_path / "docs", ignore=shutil.ignore_patterns("_build"))
    for name in ("mtl_lib", "examples", "notebooks", "bench", "pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path / "docs"


def _build(docs: Path, out: Path, builder: str = "html") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder, str(docs),
         str(out)], cwd=docs.parent, env=ENV, capture_output=True, text=True, timeout=1200)


# ------------------------------------------------------------------------------ fast checks
def test_every_public_name_has_an_autodoc_entry():
    import mtl_lib

    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.rst"))
    documented = set(re.findall(r"^\.\. (?:auto\w+|py:data):: mtl_lib\.(\w+)\s*$", text,
                                flags=re.M))
    assert sorted(set(mtl_lib.__all__) - documented) == []
    # the one entry written by hand (autodata would show str's docstring) shows the real value
    assert f":value: {mtl_lib.DEFAULT_ENCODER!r}" in (DOCS / "api.rst").read_text(encoding="utf-8")


def test_seed_names_keys_and_formulas_carry_over():
    from mtl_lib.evaluation.metrics import METRICS
    from mtl_lib.models.encoders import ENCODER_TABLE

    # The tables are generated from these registries, so the registries must hold the seed's.
    assert sorted(METRICS) == sorted(SEED_METRICS)
    assert [n for names in ENCODER_TABLE.values() for n in names] == SEED_CONFIG_NAMES
    assert list(ENCODER_TABLE) == ["DISTILBERT", "BERT", "ROBERTA", "ALBERT", "XLNET"]
    shared = (DOCS / "shared_encoder.rst").read_text(encoding="utf-8")
    for title in ("Shared Encoder", "What is a shared encoder?", "Choice of shared encoder",
                  "Losses", "Metrics"):
        assert f"\n{title}\n" in shared
    assert ".. mtl-encoder-table::" in shared
    assert ".. mtl-fields-table:: mtl_lib.evaluation.metrics.METRICS" in shared
    for name in ("CrossEntropyLoss", "NERLoss"):
        assert f".. autoclass:: mtl_lib.models.losses.{name}\n   :members: forward" in shared
    db = (DOCS / "db_linear.rst").read_text(encoding="utf-8")
    for title in ("DistilBERT + Linear", "API", "Configuration schema", "Checkpoint schema",
                  "Theory"):
        assert f"\n{title}\n" in db
    for key in ["encoder_lr", "classifier_lr", "dropout", *CHECKPOINT_KEYS]:
        assert f"* ``{key}``: " in db
    assert ".. _db-linear-theory:" in db
    for formula in (r"\mathrm{LogSoftmax}(x_i) = \log\left(\frac{\exp(x_i)}{\sum_j \exp(x_j)}\right)",
                    r"L(y, f(x)) = \sum_{n=1}^{N} \frac{1}{\sum_{n'=1}^{N} w_{y_{n'}}} \times l_n(y, f(x))",
                    r"l_n(y, f(x)) = -w_{y_n} \times f(x)_{n, y_n}"):
        assert formula in db
    assert (DOCS / "_static" / "db_linear_topology.svg").is_file()


def test_markdown_results_become_warning_free_rst():
    import mtl_markdown
    from docutils.core import publish_doctree
    from docutils.utils import Reporter

    markdown = """# Reliability
Intro with `code`s, **bold**, *it*, a [link](https://example.org), 5*3 and a_b_ |x|.

## Results
| check | result | time |
|---|:---:|---|
| resume `x` | **pass** | 1.5 s |
| nan | fail | |

- one `a`
  continued
  - nested
- two
1. first
2. second

```bash
make test
```
Trailing paragraph with <angle> and `back\\` slash.
"""
    rst = mtl_markdown.to_rst(markdown)
    messages = []
    doctree = publish_doctree(rst, settings_overrides={"report_level": Reporter.INFO_LEVEL,
                                                       "halt_level": Reporter.SEVERE_LEVEL + 1,
                                                       "warning_stream": False})
    for node in doctree.findall():
        if node.tagname == "system_message" and node["level"] >= Reporter.WARNING_LEVEL:
            messages.append(node.astext())
    assert messages == []
    text = doctree.astext()
    assert "Results" in text and "resume" in text and "make test" in text
    assert "5*3" in text and "|x|" in text and "<angle>" in text


# ------------------------------------------------------------------------------ slow checks
@pytest.mark.slow
def test_docstring_examples_run():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--doctest-modules", "mtl_lib", "-q",
         "-p", "no:cacheprovider"], cwd=ROOT, env=ENV, capture_output=True, text=True,
        timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", result.stdout)


@pytest.mark.slow
def test_error_scenarios_raise_what_the_docs_show():
    import mtl_errors

    for name, scenario in mtl_errors.SCENARIOS.items():
        outcome = mtl_errors.run(name)
        assert outcome.error == scenario.expect, (name, outcome.message)
        assert outcome.message.strip(), name
        assert "mtl-docs-" not in outcome.message, name  # no temporary paths leak into the docs


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    import mtl_lib

    docs = _copy_docs(tmp_path)
    out = tmp_path / "html"
    result = _build(docs, out)
    assert result.returncode == 0, result.stderr[-6000:]
    assert "WARNING" not in result.stderr, result.stderr[-6000:]
    pages = {p.stem: p.read_text(encoding="utf-8") for p in out.glob("*.html")}
    for page in ("index", "quickstart", "installation", "concepts", "architecture",
                 "shared_encoder", "db_linear", "task_files", "training", "widgets", "cli",
                 "notebooks", "performance", "reliability", "api"):
        assert page in pages, page
    shared = pages["shared_encoder"]
    for name in SEED_CONFIG_NAMES + ["minilm"] + SEED_METRICS:
        assert f">{name}<" in shared, name
    db = pages["db_linear"]
    for key in CHECKPOINT_KEYS + ["encoder_lr", "classifier_lr", "dropout"]:
        assert f">{key}<" in db, key
    assert 'id="mtl_lib.DB_Linear"' in db
    assert 'id="mtl_lib.PerLevelHierarchy"' in db
    assert 'id="mtl_lib.db_linear.seed_view"' in db
    assert "db_linear_topology.svg" in db
    everything = "".join(pages.values())
    for name in mtl_lib.__all__:
        assert f'id="mtl_lib.{name}"' in everything, name
    for command in ("demo", "train", "evaluate", "predict", "encoders"):
        assert f"mtl-lib {command}</h2>" in pages["cli"] or f"mtl-lib {command}<" in pages["cli"]
    # real messages, produced during the build
    assert "snips/dev/seq.out:1: expected 6 tags" in pages["task_files"]
    assert "unknown key &#39;metric&#39;" in pages["task_files"] or \
        "unknown key 'metric'" in pages["task_files"]
    for field in ("encoder_lr", "grad_accum_steps", "early_stopping_patience"):
        assert f">{field}<" in pages["training"]
    assert ">class_weighting<" in pages["task_files"]
    # the lessons: executed copies rendered as pages, in the navigation, with their plots
    lessons = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(p.stem for p in (out / "lessons").glob("*.html")) == lessons
    for name in lessons:
        page = (out / "lessons" / f"{name}.html").read_text(encoding="utf-8")
        assert re.search(r'<img [^>]*src="\.\./_images/[^"]+\.png"', page), f"{name}: no plot"
        assert f'href="lessons/{name}.html"' in pages["notebooks"]
        assert f'lessons/{name}.html"' in pages["index"], f"{name} is not in the navigation"
    assert "furo" in pages["index"]
    # the architecture page names every subpackage of the layer list
    for package in ("tasks/", "data/", "models/", "evaluation/", "task_types/", "training/",
                    "ui/", "experiment.py", "db_linear.py", "cli.py"):
        assert package in pages["architecture"], package


@pytest.mark.slow
def test_a_page_with_a_warning_fails_the_build(tmp_path):
    docs = _copy_docs(tmp_path)
    (docs / "broken.rst").write_text(
        ":orphan:\n\nBroken\n======\n\nAn undefined substitution: |nosuch|.\n", encoding="utf-8")
    api = (docs / "api.rst").read_text(encoding="utf-8")
    (docs / "api.rst").write_text(api.replace(".. autofunction:: mtl_lib.evaluate\n", ""),
                                  encoding="utf-8")
    result = _build(docs, tmp_path / "out", builder="dummy")
    assert result.returncode != 0
    assert "broken.rst" in result.stderr and "nosuch" in result.stderr, result.stderr[-3000:]
    assert "mtl_lib.evaluate is in mtl_lib.__all__ but not documented" in result.stderr
