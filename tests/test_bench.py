"""The benchmark scripts: each runs in --quick mode and ends with its ratio line; helpers are
checked against hand computations."""

import importlib
import json
import re
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import _common as C  # noqa: E402

FIELDS = {"name", "ratio", "target", "checks", "sides", "repeats", "machine", "command"}


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _run(name, tmp_path, capsys, extra=()):
    module = importlib.import_module(name)
    result = module.main(["--quick", "--results", str(tmp_path), *extra])
    lines = [x for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert re.match(rf"^RATIO {name}: \S", lines[-1]), lines[-1]  # the ratio line comes last
    saved = json.loads((tmp_path / f"{name}.json").read_text())
    assert FIELDS <= set(saved) and saved["name"] == name and saved["quick"] is True
    assert saved["machine"]["torch_threads"] == C.THREADS
    assert saved["command"].startswith("python ")
    return result, saved, lines[-1]


@pytest.mark.parametrize("name", ["joint_vs_separate", "padding", "trainer_overhead", "conflict_overhead"])
def test_training_speed_scripts_run_quick(name, tmp_path, capsys, keep_threads):
    result, saved, line = _run(name, tmp_path, capsys)
    assert isinstance(saved["ratio"], float) and saved["ratio"] > 0
    assert f"{saved['ratio']:.2f}x" in line
    for side in saved["sides"].values():
        assert side["median_s"] > 0 and len(side["times_s"]) == saved["repeats"] == 2
        assert side["throughput_samples_per_s"] == pytest.approx(side["samples_per_repeat"] / side["median_s"])


def test_inference_script_checks_every_k(tmp_path, capsys, keep_threads):
    _, saved, line = _run("inference", tmp_path, capsys)
    targets = {c["label"]: c["target"] for c in saved["checks"]}
    assert targets == {"k=2": 1.8, "k=3": 2.7, "k=4": 3.6, "predictor_k2": None}
    assert "k=4" in line and "predictor_k2" in line


def test_quality_script_gives_both_approaches_the_same_budget(tmp_path, capsys, keep_threads):
    _, saved, line = _run("quality_per_time", tmp_path, capsys, ["--budget", "2", "--rounds", "2"])
    joint, sep = saved["sides"]["joint"], saved["sides"]["separate"]
    for s in (joint, sep):
        assert 0 <= s["intent_accuracy"] <= 1 and 0 <= s["slot_f1"] <= 1
    # each side stops after the step that crosses its share: at least the budget is used
    assert joint["train_seconds"] >= 2 and sep["intent_model"]["train_seconds"] >= 1
    assert sep["slots_model"]["train_seconds"] >= 1
    mean = lambda s: (s["intent_accuracy"] + s["slot_f1"]) / 2  # noqa: E731
    if mean(sep) > 0:
        assert saved["ratio"] == pytest.approx(mean(joint) / mean(sep))


def test_gpu_script_says_it_ran_on_cpu(tmp_path, capsys, keep_threads):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    _, saved, line = _run("gpu", tmp_path, capsys)
    assert saved["ratio"] is None and saved["settings"]["mfu"] is None
    assert "CPU" in line and "not meaningful" in line
    # the Trainer chose the device and precision itself; the GPU branches say they did not run
    settings = saved["settings"]
    assert settings["device_auto"] == "cpu" and settings["precision_auto"] == "fp32"
    assert settings["bf16_native"] == settings["fp16_gradscaler"] == "n/a (no CUDA device)"
    assert set(saved["sides"]) == {"train"}


@pytest.mark.slow
def test_memory_script_measures_each_scenario_in_its_own_process(tmp_path, capsys, keep_threads):
    _, saved, line = _run("memory", tmp_path, capsys)
    sides = saved["sides"]
    assert set(sides) == {"baseline", "demo", "bert_base"}
    for s in sides.values():
        assert 50 < s["peak_rss_mb"] < 64_000
        assert s["rusage_children_max_mb"] >= s["peak_rss_mb"] * 0.9  # parent's view agrees
    assert saved["ratio"] == pytest.approx(sides["bert_base"]["peak_rss_mb"] / sides["demo"]["peak_rss_mb"])


# -- helpers against hand computations ---------------------------------------------------------
def test_paired_ratio_is_the_median_of_per_repeat_throughput_ratios():
    # repeat ratios: 4/2 = 2, 6/2 = 3, 5/5 = 1 -> median 2 (the ratio of medians would be 5/2)
    assert C.paired_ratio([4, 6, 5], [2, 2, 5]) == pytest.approx(2.0)
    # work per repeat: fast side does 3 units in 1 s, slow side 1 unit in 1 s
    assert C.paired_ratio([1.0], [1.0], slow_work=1, fast_work=3) == pytest.approx(3.0)


def test_interleaving_alternates_the_order_and_skips_warmup():
    calls = []
    sides = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = C.interleaved(sides, repeats=3, warmup=1, log=False)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}


def test_ratio_line_format():
    checks = [C.check("k=2", 1.95, 1.8), C.check("k=4", 3.1, 3.6), C.check("info", 1.2, None),
              C.check("MFU", None, None, unit="%")]
    assert C.ratio_line("x", checks) == ("RATIO x: k=2 1.95x (target >= 1.80x) PASS; "
                                         "k=4 3.10x (target >= 3.60x) MISS; info 1.20x (no target); MFU n/a")


def test_static_padding_pads_inputs_and_token_labels_only():
    from padding import pad_static

    f = {"input_ids": [101, 7, 102], "attention_mask": [1, 1, 1], "token_type_ids": [0, 0, 0],
         "labels": {"intent": 4, "slots": [-100, 3, -100]}}
    out = pad_static(f, 5, pad_id=0)
    assert out == {"input_ids": [101, 7, 102, 0, 0], "attention_mask": [1, 1, 1, 0, 0],
                   "token_type_ids": [0, 0, 0, 0, 0],
                   "labels": {"intent": 4, "slots": [-100, 3, -100, -100, -100]}}
    with pytest.raises(ValueError):
        pad_static(f, 2, pad_id=0)


def test_trainer_and_plain_loops_get_the_same_batches(tmp_path):
    # the joint/separate and overhead benchmarks rely on a single length bucket
    from mtl_lib import Trainer, TrainerConfig, tiny_encoder
    from mtl_lib.data import length_bucketed_batches

    enc = tiny_encoder("BERT", C.snips_texts(50))
    model, groups = C.snips_features(True, enc)
    train = groups[0].splits["train"]
    feats, ours = C.fixed_batches(train, 5, 8, seed=0)  # what the plain loops get
    assert feats == C.bucketed_sample(train, 5, 8, seed=0)
    assert len(feats) == 40 and len({id(f) for f in feats}) == 40
    lengths = [len(f["input_ids"]) for f in feats]
    assert ours == length_bucketed_batches(lengths, 8, torch.Generator().manual_seed(0))
    trainer = Trainer(model, [C.train_group(groups[0], feats)],
                      TrainerConfig(batch_size=8, max_steps=5, progress=False))
    for epoch in range(2):
        theirs = trainer.group_batches(0, epoch)
        assert sorted(map(sorted, theirs)) == sorted(map(sorted, ours))
    # the picked batches were bucketed over all of `train`; re-bucketing adds no padding
    picked = sum(max(lengths[i:i + 8]) * 8 for i in range(0, 40, 8))
    rebucketed = sum(max(lengths[i] for i in b) * len(b) for b in ours)
    assert rebucketed <= picked
    # ...and far less padding than the same number of random batches
    rand = [len(f["input_ids"]) for f in C.subset(train, 40, seed=0)]
    pad = lambda ls: sum(max(ls[i:i + 8]) * 8 - sum(ls[i:i + 8]) for i in range(0, 40, 8))  # noqa: E731
    assert pad(lengths) * 1.5 < pad(rand)
    with pytest.raises(ValueError):
        C.bucketed_sample(train, 1000, 8)
    with pytest.raises(ValueError):  # more than one bucket: the Trainer's batches would differ
        C.fixed_batches(train, 51, 1)


def test_plain_loop_steps_like_the_trainer():
    # trainer_overhead's hand loop runs the Trainer's algorithm (fused AdamW groups, clipping,
    # schedule): with dropout off, the same batches give the same weights
    import copy

    from mtl_lib import tiny_encoder

    enc = tiny_encoder("BERT", C.snips_texts(50))
    model, groups = C.snips_features(True, enc)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if hasattr(m, "dropout_prob"):  # attention dropout is a float in transformers' SDPA path
            m.dropout_prob = 0.0
    twin, start = copy.deepcopy(model), copy.deepcopy(model.state_dict())
    feats, _ = C.fixed_batches(groups[0].splits["train"], 4, 8, seed=0)
    trainer, side = C.stepped_trainer(model, [C.train_group(groups[0], feats)], 4, batch_size=8,
                                      max_steps=4, warmup_ratio=0.25, bf16=False)
    side()
    assert trainer.step == 4
    loop = C.plain_loop(twin, C.multitask_loss, feats, C.collator(twin), torch.device("cpu"),
                        (5e-5, 1e-3), warmup=1, total=4)
    loop(trainer.group_batches(0, 0))  # the batches, in the order the Trainer took them
    params = dict(model.named_parameters())
    assert all(not torch.equal(p, start[n]) for n, p in params.items())  # every weight was trained
    for name, p in twin.named_parameters():
        torch.testing.assert_close(p, params[name], msg=name)


def test_gpu_peak_table_and_flop_inputs():
    from gpu import peak_tflops, synthetic_features

    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops("NVIDIA A10") == 125.0
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0 and peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("Some Future GPU") is None and peak_tflops("NVIDIA H100 NVL") is None
    from mtl_lib import tiny_encoder

    tok = tiny_encoder("BERT").tokenizer
    feats = synthetic_features(tok, 3, 16, 7, 72)
    for f in feats:
        assert len(f["input_ids"]) == len(f["labels"]["slots"]) == 16
        assert f["input_ids"][0] == tok.cls_token_id and f["input_ids"][-1] == tok.sep_token_id
        assert not set(f["input_ids"][1:-1]) & set(tok.all_special_ids)
        assert 0 <= f["labels"]["intent"] < 7


def test_separate_models_are_scored_like_the_joint_model():
    # quality_per_time and recipes score transformers models through mtl_lib.evaluate; the
    # adapter must hand back exactly their logits
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    enc, weights, tmp = C.encoder_and_weights(True)
    cls = AutoModelForSequenceClassification.from_pretrained(weights, num_labels=3).eval()
    tok = AutoModelForTokenClassification.from_pretrained(weights, num_labels=5).eval()
    batch = enc.tokenizer(["book a table", "play jazz now please"], padding=True, return_tensors="pt")
    out = C.TransformersAsMultiTask({"intent": cls, "slots": tok}, enc.tokenizer)(
        batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    with torch.no_grad():
        assert torch.equal(out["intent"], cls(**batch).logits)
        assert torch.equal(out["slots"], tok(**batch).logits)
    tmp.cleanup()


def test_recipes_plain_transformers_baseline_trains_the_recipes_steps(monkeypatch, keep_threads):
    # a one-task pair classification (MRPC) gets the transformers baseline, trained for exactly
    # the recipe's steps; a tagging or multi-task group does not
    recipes = importlib.import_module("recipes")
    seen = []
    real_loop = C.plain_loop

    def counting_loop(*args, **kwargs):
        train = real_loop(*args, **kwargs)
        seen.append(args[-1])  # the schedule's total

        def counted(batches):
            batches = list(batches)
            seen.append(len(batches))
            train(batches)
        return counted
    monkeypatch.setattr(C, "plain_loop", counting_loop)
    root = BENCH.parent / "examples" / "tasks"
    row = recipes.run_option(root / "mrpc.yml", {}, quick=True, seed=0, plain=True, frozen=True)
    assert seen == [row["steps"], row["steps"]] == [4, 4]
    assert 0 <= row["baselines"]["paraphrase"]["plain_transformers_accuracy"] <= 1
    assert 0 <= row["baselines"]["paraphrase"]["frozen_embeddings_accuracy"] <= 1
    seen.clear()
    row = recipes.run_option(root / "snips.yml", {}, quick=True, seed=0, plain=True)
    assert seen == [] and all("plain_transformers_accuracy" not in b for b in row["baselines"].values())
