"""Write one tiny checkpoint per encoder family of the seed table, with the predictions it gives.

Run once, with the library as it was when families were a closed set (commit 4772245), from the
repository root: ``python tests/data/family_checkpoints/make_family_checkpoints.py``.
``tests/test_compat.py`` loads each with today's code and checks that it predicts the same.
"""

import json
from pathlib import Path

import torch

from mtl_lib.evaluation.predict import Predictor
from mtl_lib.models.multitask import MultiTaskModel, save_model
from mtl_lib.models.tiny import tiny_encoder
from mtl_lib.tasks.spec import TaskSpec

OUT = Path(__file__).parent
TEXTS = ["play some jazz by miles davis on spotify", "book a table for two in paris tomorrow",
         "what is the weather in boston"]
PAIRS = ["play jazz on spotify", "a table for two please", "is it raining in boston"]

for family in ("DISTILBERT", "BERT", "ROBERTA", "ALBERT", "XLNET"):
    encoder = tiny_encoder(family, hidden_size=16, num_layers=1, num_heads=2, vocab_size=300)
    tasks = [TaskSpec(name="topic", task_type="classification", labels=["music", "food", "weather"]),
             TaskSpec(name="tags", task_type="tagging", labels=["O", "B-X", "I-X"]),
             TaskSpec(name="para", task_type="pair_classification", labels=["0", "1"])]
    model = MultiTaskModel.from_tasks(encoder, tasks, seed=1)
    with torch.no_grad():  # larger head weights: predictions that differ between texts
        for head in model.heads.values():
            for p in head.parameters():
                p.mul_(30)
    where = save_model(model, OUT / family.lower())
    predictor = Predictor.from_checkpoint(where)
    got = predictor.predict(TEXTS, text_pairs=PAIRS)
    expected = [{"topic": r["topic"]["scores"], "tags": r["tags"]["tags"], "para": r["para"]["scores"]}
                for r in got]
    (where / "expected.json").write_text(json.dumps(expected, indent=1))
    print(family, [r["tags"] for r in expected], [r["para"] for r in expected])
