"""Checkpoints written by the first version of mtl_lib still load and predict what they did.

tests/data/v1_checkpoints/ holds tiny checkpoints written before the subpackage refactor, each
with the predictions it gave then (expected.json): a run directory (best/ and last/), a model
with a hierarchical task whose labels were "top > leaf" strings, and a DB_Linear checkpoint in
the seed's separate-file layout.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from mtl_lib import DB_Linear, Predictor, load_model
from mtl_lib.cli import main
from mtl_lib.db_linear import seed_view
from mtl_lib.training.checkpoint import restore_training

V1 = Path(__file__).parent / "data" / "v1_checkpoints"


def expected(name: str) -> dict:
    return json.loads((V1 / name / "expected.json").read_text())


def test_a_v1_run_predicts_what_it_did():
    predictor = Predictor(load_model(V1 / "snips_run"))
    for text, want in expected("snips_run").items():
        got = predictor.predict(text)
        assert got["slots"]["tags"] == want["slots"]
        assert got["intent"]["scores"] == pytest.approx(want["intent"], abs=1e-6)


def test_v1_hierarchical_labels_become_paths():
    model = load_model(V1 / "trec_model")
    assert all(isinstance(p, tuple) and len(p) == 2 for p in model.tasks["trec"].labels)
    predictor = Predictor(model)
    for text, want in expected("trec_model").items():
        scores = predictor.predict(text)["trec"]["scores"]
        assert scores == pytest.approx(want, abs=1e-6)  # "TOP > leaf" keys, as written then


def test_a_v1_db_linear_checkpoint_loads_as_a_model_and_as_db_linear():
    want = expected("db_linear")
    scores = Predictor(load_model(V1 / "db_linear")).logits(list(want))["hierarchical"]
    assert torch.allclose(scores, torch.tensor(list(want.values())), atol=1e-5)
    model = DB_Linear.from_checkpoint(V1 / "db_linear")
    assert torch.allclose(model.predict_scores(list(want)), scores)
    view = seed_view(V1 / "db_linear", with_weights=False)
    old = json.loads((V1 / "db_linear" / "config.json").read_text())
    assert view["hierarchy"]["level_paths"] == old["hierarchy"]["level_paths"]
    assert {k: view["config"][k] for k in ("encoder_lr", "classifier_lr", "dropout")} == \
        {k: old["config"][k] for k in ("encoder_lr", "classifier_lr", "dropout")}


def test_v1_checkpoints_work_from_the_command_line(capsys, tmp_path):
    (tmp_path / "in.txt").write_text("what is the weather in boston\n")
    for name in ("snips_run", "trec_model", "db_linear"):
        assert main(["predict", str(V1 / name), "-i", str(tmp_path / "in.txt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(json.loads(line)["text"] == "what is the weather in boston" for line in lines)


def test_a_v1_last_checkpoint_resumes(tmp_path):
    # best_score / bad_evals sat at the top of v1's trainer_state.json; they belong to callbacks now
    from mtl_lib import Trainer, build_groups
    from mtl_lib.experiment import snips_tasks

    run = tmp_path / "run"
    shutil.copytree(V1 / "snips_run", run)
    model = load_model(run / "last")
    tasks = snips_tasks(max_examples=60)
    groups = build_groups(tasks, model.encoder.tokenizer)
    trainer = Trainer(model, groups, max_steps=5, batch_size=8, output_dir=str(run), progress=False)
    restore_training(trainer, run / "last")
    assert trainer.step == 3
    assert trainer.state_dict()["callbacks"]["checkpoint"]["best_score"] is not None
    trainer.fit(resume_from=run / "last")
    assert trainer.step == 5


# --- one checkpoint per family of the seed table, written when families were a closed set --------
FAMILIES = Path(__file__).parent / "data" / "family_checkpoints"
TEXTS = ["play some jazz by miles davis on spotify", "book a table for two in paris tomorrow",
         "what is the weather in boston"]
PAIRS = ["play jazz on spotify", "a table for two please", "is it raining in boston"]


@pytest.mark.parametrize("family", ["distilbert", "bert", "roberta", "albert", "xlnet"])
def test_checkpoints_of_the_five_seed_families_predict_what_they_did(family, tmp_path):
    want = json.loads((FAMILIES / family / "expected.json").read_text())
    model = load_model(FAMILIES / family)
    assert model.encoder.family == family.upper()
    # saved again by today's code and reloaded: the same predictions once more
    again = load_model(model.save_pretrained(tmp_path / "again"))
    for m in (model, again):
        got = Predictor(m).predict(TEXTS, text_pairs=PAIRS)
        for g, w in zip(got, want, strict=True):
            assert g["tags"]["tags"] == w["tags"]
            assert g["topic"]["scores"] == pytest.approx(w["topic"], abs=1e-6)
            assert g["para"]["scores"] == pytest.approx(w["para"], abs=1e-6)  # segment ids as then
