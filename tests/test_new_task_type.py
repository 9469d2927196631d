"""A new kind of task is one TaskType subclass and this test.

``cautious`` is a classification that abstains: it answers the top class only when the model
gives it at least 0.6, and ``"unsure"`` otherwise. Registering the one class below is all it
takes for a task file to train it, evaluate it, predict with it and reload its checkpoint; no
other module of mtl_lib changes.
"""

from __future__ import annotations

import textwrap

import pytest
import torch

from mtl_lib import Predictor, Trainer, TrainerConfig, build_experiment, evaluate, load_model, load_task_file
from mtl_lib.task_types import TASK_TYPES, register_task_type, task_type
from mtl_lib.task_types.classification import ClassificationType
from mtl_lib.tasks.spec import TaskFileError, TaskSpec


class CautiousType(ClassificationType):
    """Top class when its probability is at least 0.6, else ``"unsure"`` (scored as wrong)."""

    name = "cautious"
    aliases = ()
    threshold = 0.6

    def decode(self, logits, feature):
        p = torch.softmax(logits.float(), -1)  # (C,)
        return self.spec.labels[int(p.argmax())] if float(p.max()) >= self.threshold else "unsure"

    def present(self, logits, feature, words):
        out = super().present(logits, feature, words)
        return out | {"label": self.decode(logits, feature)}


@pytest.fixture(scope="module")
def registered():
    register_task_type(CautiousType)
    yield CautiousType
    TASK_TYPES.pop("cautious")  # leave the registry as the other tests expect it
    from mtl_lib import task_types

    task_types._BY_NAME.pop("cautious")


def test_unregistered_name_is_a_clear_error():
    with pytest.raises(TaskFileError, match="task_type 'cautious' is not one of"):
        task_type(TaskSpec(name="t", task_type="cautious"))


def test_a_name_cannot_be_registered_twice(registered):
    class Again(ClassificationType):
        name = "cautious"

    with pytest.raises(ValueError, match="already registered"):
        register_task_type(Again)


def test_the_new_type_trains_evaluates_predicts_and_reloads(registered, tmp_path):
    task_file = tmp_path / "cautious.yml"
    task_file.write_text(textwrap.dedent("""\
        intent:
          task_type: cautious
          format: jointbert
          path: snips
          label_map_or_file: snips/intent_label.txt
          max_examples: 64
        """))
    model, groups = build_experiment(load_task_file(task_file), "tiny-bert", seed=0)
    assert isinstance(model.types["intent"], CautiousType)
    Trainer(model, groups, TrainerConfig(max_steps=2, batch_size=8, progress=False, output_dir=None)).fit()

    # an untrained tiny model is never 60% sure of one of 7 intents: every answer abstains,
    # and evaluation scores the abstentions as errors through the type's own decode
    scores = evaluate(model, groups, split="dev")["intent"]
    assert scores["classification_accuracy"] == 0.0
    (pred,) = Predictor(model).predict(["play some jazz"])
    assert pred["intent"]["label"] == "unsure" and pred["intent"]["score"] < 0.6

    model.save_pretrained(tmp_path / "ckpt")
    again = load_model(tmp_path / "ckpt")
    assert isinstance(again.types["intent"], CautiousType)
    assert Predictor(again).predict(["play some jazz"])[0]["intent"]["label"] == "unsure"
