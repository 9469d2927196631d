"""Tests for mtl_lib.ui.plots: structure of each figure, smoothing maths, normalisation, saving."""

from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from mtl_lib.ui import plots

TASKS = ["intent", "slots", "topic"]


def make_history(steps=200, per_epoch=80, seed=0):
    """3 tasks sampled 50/30/20 %, 200 steps, dev evaluation every 50 steps."""
    rng = np.random.default_rng(seed)
    recs = []
    for step in range(1, steps + 1):
        task = str(rng.choice(TASKS, p=[0.5, 0.3, 0.2]))
        recs.append({"kind": "train", "step": step, "epoch": step / per_epoch, "task": task,
                     "loss": float(2.0 * np.exp(-step / 60) + rng.uniform(0, 0.3)),
                     "lr": 5e-5 * min(1.0, step / 20) * (1 - step / (steps + 1)),
                     "samples_per_s": 100.0})
        if step % 50 == 0:
            for t, metric, top in [("intent", "accuracy", 0.95), ("slots", "f1", 0.9),
                                   ("slots", "precision", 0.8), ("topic", "f1", 0.7)]:
                recs.append({"kind": "eval", "step": step, "epoch": step / per_epoch,
                             "split": "dev", "task": t, "metric": metric,
                             "value": top - 0.4 * (1 - step / steps)})
    return recs


@pytest.fixture(scope="module")
def recs():
    return make_history()


def make_report(n):
    rng = np.random.default_rng(1)
    return [{"label": f"class_{i:02d}", "precision": float(p), "recall": float(r),
             "f1": float(2 * p * r / (p + r)), "support": int(s)}
            for i, (p, r, s) in enumerate(zip(rng.uniform(0.3, 1, n), rng.uniform(0.3, 1, n),
                                              rng.integers(1, 200, n), strict=True))]


def legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_smooth_ema_matches_hand_computation():
    # bias-corrected EMA with beta=0.5: weighted means 1, (0.5*1+2)/1.5, (0.25+1+3)/1.75
    np.testing.assert_allclose(plots.smooth([1.0, 2.0, 3.0], 0.5),
                               [1.0, 2.5 / 1.5, 4.25 / 1.75])
    np.testing.assert_allclose(plots.smooth([4.0, 1.0], 0.0), [4.0, 1.0])
    np.testing.assert_allclose(plots.smooth([3.0, 3.0, 3.0], 0.99), [3.0, 3.0, 3.0])


def test_smooth_window_is_trailing_mean():
    np.testing.assert_allclose(plots.smooth([1, 2, 3, 4, 5], 2), [1, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(plots.smooth([1, 2, 3], 1), [1, 2, 3])
    with pytest.raises(ValueError):
        plots.smooth([1, 2], 1.0)
    np.testing.assert_allclose(plots.smooth([1, 2], 0), [1, 2])  # 0 = no smoothing
    with pytest.raises(ValueError):
        plots.smooth([1, 2], -3)


def test_records_accepts_history_object_or_list(recs):
    a = plots.plot_losses(recs)
    b = plots.plot_losses(SimpleNamespace(records=recs))
    ya = [line.get_ydata() for line in a.axes[0].lines]
    yb = [line.get_ydata() for line in b.axes[0].lines]
    assert all(np.array_equal(x, y) for x, y in zip(ya, yb, strict=True))


def test_task_colors_consistent():
    colors = plots.task_colors(TASKS)
    assert list(colors) == TASKS and len(set(colors.values())) == 3
    assert plots.task_colors(TASKS)["slots"] == colors["slots"]


def test_plot_losses(recs):
    fig = plots.plot_losses(recs, smoothing=0.9)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 * len(TASKS)  # raw + smoothed per task
    assert legend_texts(ax) == TASKS
    assert ax.get_xlabel() == "step" and ax.get_title()
    # the smoothed line of "slots" is the EMA of its own raw losses, in the task's colour
    rows = [r for r in recs if r.get("kind") == "train" and r["task"] == "slots"]
    raw, smoothed = ax.lines[2], ax.lines[3]
    np.testing.assert_allclose(raw.get_ydata(), [r["loss"] for r in rows])
    np.testing.assert_allclose(smoothed.get_ydata(), plots.smooth([r["loss"] for r in rows], 0.9))
    color = plots.task_colors(sorted(TASKS))["slots"]
    assert matplotlib.colors.same_color(smoothed.get_color(), color)
    # secondary epoch axis exists
    assert any(getattr(c, "get_xlabel", lambda: "")() == "epoch" for c in ax.child_axes)


def test_plot_losses_subset_window_and_errors(recs):
    fig = plots.plot_losses(recs, smoothing=10, tasks=["topic"])
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and legend_texts(ax) == ["topic"]
    # "topic" keeps the colour it has when all tasks are shown
    assert matplotlib.colors.same_color(ax.lines[1].get_color(),
                                        plots.task_colors(sorted(TASKS))["topic"])
    with pytest.raises(ValueError, match="unknown task"):
        plots.plot_losses(recs, tasks=["nope"])


def test_plot_metrics(recs):
    fig = plots.plot_metrics(recs)
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == TASKS
    assert [len(ax.lines) for ax in axes] == [1, 2, 1]
    assert all(len(line.get_xdata()) == 4 for ax in axes for line in ax.lines)
    assert legend_texts(axes[1])[0].startswith("f1 (best 90.0%")
    # values stay fractions; the % is only the tick format
    assert max(axes[0].lines[0].get_ydata()) == pytest.approx(0.95)
    assert isinstance(axes[0].yaxis.get_major_formatter(), matplotlib.ticker.PercentFormatter)

    fig = plots.plot_metrics(recs, tasks=["slots"], metrics=["precision"])
    assert len(fig.axes) == 1 and legend_texts(fig.axes[0])[0].startswith("precision")


def test_plot_per_class_single_metric_and_top():
    report = make_report(72)
    fig = plots.plot_per_class(report)
    ax = fig.axes[0]
    assert len(ax.patches) == 72
    assert fig.get_figheight() > 15  # height scales with the number of classes
    widths = [p.get_width() for p in ax.patches]
    assert widths == sorted(widths, reverse=True)  # sorted by f1, best at the top
    labels = [t.get_text() for t in ax.get_yticklabels()]
    best = max(report, key=lambda r: r["f1"])
    assert labels[0] == f"{best['label']} (n={best['support']})"

    fig = plots.plot_per_class(report, top=10, sort_by="f1", ascending=True)
    ax = fig.axes[0]
    assert len(ax.patches) == 10
    worst = sorted(r["f1"] for r in report)[:10]
    np.testing.assert_allclose([p.get_width() for p in ax.patches], worst)
    assert "10 of 72" in ax.get_title()


def test_plot_per_class_all_metrics():
    fig = plots.plot_per_class(make_report(5), metric="all", sort_by="support")
    ax = fig.axes[0]
    assert len(ax.patches) == 15
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["precision", "recall", "f1"]


def test_plot_confusion_matrix_normalised():
    m = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    fig = plots.plot_confusion_matrix(m, ["a", "b", "c"])
    ax = fig.axes[0]
    data = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(data.sum(axis=1), [1, 1, 0])  # empty row stays 0, not NaN
    np.testing.assert_allclose(data[0], [0.8, 0.2, 0])
    assert len(fig.axes) == 2  # heatmap + colourbar
    assert sorted(t.get_text() for t in ax.texts) == ["20%", "25%", "75%", "80%"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]

    fig = plots.plot_confusion_matrix(m, ["a", "b", "c"], normalize=False)
    np.testing.assert_array_equal(np.asarray(fig.axes[0].images[0].get_array()), m)


def test_plot_confusion_matrix_many_labels_merged():
    rng = np.random.default_rng(0)
    n = 40
    m = rng.integers(0, 5, (n, n)) + np.diag(rng.integers(10, 100, n))
    labels = [f"L{i}" for i in range(n)]
    fig = plots.plot_confusion_matrix(m, labels, max_labels=30)
    ax = fig.axes[0]
    data = np.asarray(ax.images[0].get_array())
    assert data.shape == (30, 30)
    np.testing.assert_allclose(data.sum(axis=1), 1.0)
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks[-1] == "(other)"
    kept = sorted(np.argsort(-m.sum(axis=1), kind="stable")[:29])
    assert ticks[:-1] == [labels[i] for i in kept]
    assert not ax.texts  # too many cells to annotate
    # the total count is preserved by the merge
    raw = plots.plot_confusion_matrix(m, labels, normalize=False, max_labels=30)
    assert np.asarray(raw.axes[0].images[0].get_array()).sum() == m.sum()
    with pytest.raises(ValueError):
        plots.plot_confusion_matrix(m, labels[:-1])


def test_plot_sampler_mix(recs):
    fig = plots.plot_sampler_mix(recs, window=50)
    ax = fig.axes[0]
    assert len(ax.collections) == len(TASKS)
    assert [t.split(" ")[0] for t in legend_texts(ax)] == TASKS
    # the top of the stack is 100 % everywhere: shares add up to 1
    top = ax.collections[-1].get_paths()[0].vertices[:, 1]
    assert top.max() == pytest.approx(1.0)
    # share of "intent" at the last step equals its frequency in the last 50 train records
    train = [r for r in recs if r.get("kind") == "train"]
    expected = np.mean([r["task"] == "intent" for r in train[-50:]])
    share = plots.smooth([r["task"] == "intent" for r in train], 50)[-1]
    assert share == pytest.approx(expected)


def test_plot_learning_rate(recs):
    fig = plots.plot_learning_rate(recs)
    line = fig.axes[0].lines[0]
    train = [r for r in recs if r.get("kind") == "train"]
    np.testing.assert_array_equal(line.get_xdata(), [r["step"] for r in train])
    np.testing.assert_allclose(line.get_ydata(), [r["lr"] for r in train])


def test_empty_history_gives_message_not_error():
    for fn in (plots.plot_losses, plots.plot_metrics, plots.plot_sampler_mix,
               plots.plot_learning_rate):
        fig = fn([])
        assert isinstance(fig, Figure) and "no " in fig.axes[0].texts[0].get_text()


def test_save_figure_and_png_repr(recs, tmp_path):
    fig = plots.plot_losses(recs)
    path = plots.save_figure(fig, tmp_path / "a" / "b" / "loss.png")
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig._repr_png_()[:4] == b"\x89PNG"  # renders in Jupyter without pyplot


def test_nan_loss_and_single_record_do_not_break_plots():
    recs = [{"kind": "train", "step": 1, "epoch": 0.1, "task": "a", "loss": 1.0, "lr": 1e-3,
             "samples_per_s": 1.0},
            {"kind": "train", "step": 2, "epoch": 0.2, "task": "a", "loss": float("nan"),
             "lr": 1e-3, "samples_per_s": 1.0}]
    ax = plots.plot_losses(recs).axes[0]
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [1.0])  # NaN dropped, not smeared
    for fn in (plots.plot_losses, plots.plot_sampler_mix, plots.plot_learning_rate):
        assert isinstance(fn(recs[:1]), Figure)


def test_sampler_mix_counts_a_joint_step_once():
    from mtl_lib.ui.plots import plot_sampler_mix

    recs = []
    for step in range(1, 41):
        tasks = ["intent", "slots"] if step % 2 else ["ner"]  # half joint SNIPS steps, half NER
        recs += [{"kind": "train", "step": step, "epoch": step / 40, "task": t, "loss": 1.0,
                  "lr": 1e-4, "samples_per_s": 1.0} for t in tasks]
    fig = plot_sampler_mix(recs, window=10)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["intent+slots (50% overall)", "ner (50% overall)"]
