"""Generate the lesson notebooks of mtl_lib from Python (nbformat), without outputs.

Run from the repository root::

    .venv/bin/python notebooks/_build.py            # writes notebooks/*.ipynb
    .venv/bin/python notebooks/_build.py --check    # exit 1 if a notebook differs from this script

Each lesson is a list of markdown and code cells written below, so the nine notebooks share
one structure: title, learning goals and run time; a ``parameters`` cell (papermill) whose
``FAST`` switch (``MTL_LIB_FAST=1``) selects a tiny random encoder and few steps; prose, math
and pictures; a summary; an exercise with its solution in a collapsed cell. Notebooks only
import mtl_lib, they never redefine it.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

# Measured wall-clock times of each whole notebook, two notebooks at a time on a shared 2-core
# CPU, one torch thread each: fast mode while tests/test_notebooks.py ran all nine (3 min 20 s
# in total), full mode with the bundled MiniLM (04 and 05 re-measured alone on the idle machine).
# See notebooks/README.md.
TIMES = {
    "00_tour": ("30 s", "4 min"),
    "01_encoders": ("20 s", "15 s"),
    "02_heads_and_losses": ("15 s", "15 s"),
    "03_metrics": ("30 s", "3 min (under a minute with `make demo`'s checkpoint)"),
    "04_single_task_training": ("40 s", "2.5 min"),
    "05_multi_task_training": ("55 s", "9 min"),
    "06_sampling_and_loss_weighting": ("70 s", "21 min"),
    "07_hierarchical_classification": ("45 s", "4 min"),
    "08_save_load_predict": ("40 s", "3 min (about a minute with `make demo`'s checkpoint)"),
}


def _clean(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def md(text: str):
    return nbformat.v4.new_markdown_cell(_clean(text))


def code(text: str, tags: list[str] | None = None, hidden: bool = False):
    cell = nbformat.v4.new_code_cell(_clean(text))
    if tags:
        cell.metadata["tags"] = tags
    if hidden:
        cell.metadata["jupyter"] = {"source_hidden": True}
    return cell


def header(name: str, title: str, goals: list[str], intro: str = ""):
    fast, full = TIMES[name]
    lines = "\n".join(f"- {g}" for g in goals)
    return md(f"# {title}\n\n{_clean(intro)}\n\n**Learning goals.** After this lesson you can\n\n"
              f"{lines}\n\n**Time.** About {fast} in fast mode (`MTL_LIB_FAST=1`: tiny random "
              f"encoder, few steps) and about {full} in full mode (MiniLM), measured on 2 CPU cores. "
              "Run the cells from top to bottom (*Run > Run All Cells*).")


def parameters(text: str):
    return code(text, tags=["parameters"])


def exercise(question: str, solution: str):
    return [md("## Exercise\n\n" + _clean(question)),
            md("### Solution\n\nThe cell below is collapsed: click the three dots (or the blue "
               "bar on its left) to show it. Try the exercise first."),
            code(solution, hidden=True)]


SETUP = """
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every weight is local: never ask a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
"""



def setup_cell(imports: str):
    """The first code cell after the parameters: offline switches, then the imports."""
    return code(_clean(SETUP) + "\n\n" + _clean(imports))


# In fast mode the encoder is random: its small WordPiece vocabulary is trained on the SNIPS
# sentences, so that words are not all [UNK].
ENCODER_CELL = """
if ENCODER.startswith("tiny-"):
    snips_train = read_jointbert(data_root() / "snips" / "train")
    texts = [" ".join(r["words"]) for r in snips_train]
    # random weights, 128 wide (~1 M parameters); its vocabulary is trained on SNIPS
    encoder = tiny_encoder(ENCODER[5:].upper(), texts, hidden_size=128)
else:
    encoder = load_encoder(ENCODER)  # real pretrained weights, from local files
print(f"{encoder.name}: {encoder.num_parameters() / 1e6:.2f} M parameters, "
      f"hidden size {encoder.hidden_size}")
"""

NOTEBOOKS: dict[str, list] = {}


def lesson(name: str):
    def register(fn):
        NOTEBOOKS[name] = fn
        return fn
    return register


# ---- lessons (one function per notebook) ---------------------------------------------------
@lesson("00_tour")
def _tour():
    return [
        header("00_tour", "00 · A tour of mtl_lib: one encoder, many tasks", [
            "say what multi-task learning with a shared encoder is, and why it helps;",
            "check that the data and the encoder weights are on this machine;",
            "train SNIPS intent detection and slot filling together in a few lines;",
            "read the training curves and predict on a sentence of your own;",
            "find the lesson that explains each step in depth.",
        ], intro="""
        *Multi-task learning* (MTL) trains one model on several prediction problems at once.
        In NLP the common recipe is a **shared transformer encoder** that reads the text once,
        with a small **head** per task on top of it. This notebook is the whole library in one
        page; the following lessons take each piece apart.
        """),
        parameters("""
        import os

        FAST = os.environ.get("MTL_LIB_FAST") == "1"  # quick pass for CI and a first look
        ENCODER = "tiny-bert" if FAST else "minilm"   # tiny: random weights, trains in seconds
        MAX_EXAMPLES = 1000 if FAST else None         # training utterances (None: all 13,084)
        MAX_STEPS = 150 if FAST else 400              # optimiser steps (SNIPS: ~409 per epoch)
        ENCODER_LR = 1e-3 if FAST else 1e-4           # a random encoder needs a larger rate
        HEAD_LR = 3e-3 if FAST else 1e-3
        """),
        setup_cell("""
        import matplotlib.pyplot as plt
        from IPython.display import display

        import mtl_lib
        from mtl_lib import (Predictor, Trainer, TrainerConfig, build_experiment, data_root,
                             list_encoders, load_encoder, snips_tasks, tiny_encoder)
        from mtl_lib.data import read_jointbert
        from mtl_lib.ui.plots import plot_losses, plot_metrics

        print("mtl_lib", mtl_lib.__version__, "| data in", data_root())
        """),
        md(r"""
        ## 1. The idea in one picture

        A task $t$ maps a text $x$ to a prediction through the shared encoder $E$ and its own
        head $h_t$: $\hat y_t = h_t(E(x))$. The encoder turns $x$ into one vector per token,
        $E(x) \in \mathbb{R}^{T \times H}$; a sentence-level task (the *intent* of a request)
        reads one pooled vector, a token-level task (the *slots*: which words are the artist,
        the playlist...) reads every token. Training minimises a weighted sum of the task losses,

        $$\mathcal{L}(\theta_E, \theta_1, \dots, \theta_K) = \sum_{t=1}^{K} w_t\,\mathcal{L}_t ,$$

        so the encoder's parameters $\theta_E$ receive the gradients of every task. That is the
        point: what one task learns about language (that "miles davis" is a name) helps the
        others, and one encoder pass serves all heads, so $K$ tasks cost about one model.
        """),
        code("""
        fig, ax = plt.subplots(figsize=(9, 3.8))
        ax.set_axis_off()
        ax.set(xlim=(0, 10), ylim=(0, 6.2))
        boxes = [  # (x, y, width, height, text, colour)
            (0.3, 0.3, 9.4, 0.9, "play some jazz by miles davis on spotify", "#eeeeee"),
            (0.3, 1.8, 9.4, 1.4, "shared encoder E (MiniLM, BERT, RoBERTa, ...)\\n"
             "hidden states (B, T, H), pooled vector (B, H)", "#bbdefb"),
            (0.3, 3.9, 4.3, 1.0, "intent head: pooled (B, H) -> (B, 7)", "#ffe0b2"),
            (5.4, 3.9, 4.3, 1.0, "slots head: hidden (B, T, H) -> (B, T, 72)", "#c8e6c9"),
            (0.3, 5.4, 4.3, 0.7, "PlayMusic", "#fff3e0"),
            (5.4, 5.4, 4.3, 0.7, "O O B-genre O B-artist I-artist O B-service", "#e8f5e9"),
        ]
        for x, y, w, h, text, color in boxes:
            ax.add_patch(plt.Rectangle((x, y), w, h, facecolor=color, edgecolor="0.3"))
            ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=10)
        for x0, y0, x1, y1 in [(5, 1.2, 5, 1.8), (2.45, 3.2, 2.45, 3.9), (7.55, 3.2, 7.55, 3.9),
                               (2.45, 4.9, 2.45, 5.4), (7.55, 4.9, 7.55, 5.4)]:
            ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", lw=1.5))
        ax.set_title("One encoder pass, two heads (SNIPS intent + slots)")
        plt.show()
        """),
        md("""
        ## 2. What is on this machine

        Nothing is downloaded while you work. The datasets live under `data_root()` (set
        `MTL_LIB_DATA` to move them), and encoder weights come from local files: the default
        `minilm` (all-MiniLM-L6-v2, a 6-layer BERT) ships as a Python package; the other
        registry names load when their weights are in the Hugging Face cache.
        """),
        code("""
        print(sorted(p.name for p in data_root().iterdir() if p.is_dir()))
        for info in list_encoders():
            where = "available" if info.available else "no weights here"
            print(f"{info.name:24} {info.family:10} pooling={info.pooling:5} {where}")
        """),
        md("""
        SNIPS holds short voice-assistant requests, each with an **intent** (7 classes) and a
        **slot tag per word** in the IOB scheme: `B-x` begins a slot of type *x*, `I-x`
        continues it, `O` is outside any slot.
        """),
        code("""
        example = read_jointbert(data_root() / "snips" / "train")[7]
        print("intent:", example["intent"])
        for word, tag in zip(example["words"], example["slots"]):
            print(f"  {word:12} {tag}")
        """),
        md("""
        ## 3. Build, train, evaluate

        `snips_tasks()` describes the two tasks (`TaskSpec` objects: data, labels, loss,
        metrics). `build_experiment` reads and tokenises the data and puts one head per task on
        the encoder. In fast mode the encoder is a tiny random BERT whose vocabulary is
        trained on the SNIPS sentences; in full mode it is the pretrained MiniLM.
        """),
        code(ENCODER_CELL),
        code("""
        model, groups = build_experiment(snips_tasks(MAX_EXAMPLES), encoder=encoder)
        print(model.heads)
        print({g.name: {s: len(f) for s, f in g.splits.items()} for g in groups})
        """),
        md("""
        Both tasks read the same utterances, so they form one *input group*
        (`intent+slots`): every batch goes through the encoder once and feeds both heads.
        The `Trainer` runs the loop; `fit()` returns a `History`, a table of what happened.
        """),
        code("""
        config = TrainerConfig(max_steps=MAX_STEPS, batch_size=32, eval_every=MAX_STEPS // 3,
                               encoder_lr=ENCODER_LR, classifier_lr=HEAD_LR)
        trainer = Trainer(model, groups, config)
        history = trainer.fit()
        history
        """),
        code("""
        for task, scores in trainer.evaluate("dev").items():
            print(f"{task:13}", ", ".join(f"{m} {v:.1%}" for m, v in scores.items()))
        """),
        md("""
        The loss of each task falls (thin lines are single steps, thick ones smoothed) and the
        dev scores rise. `intent+slots` reports *sentence accuracy*: the share of utterances
        whose intent **and** every slot tag are right.
        """),
        code("plot_losses(history)"),
        code("plot_metrics(history)"),
        md("""
        ## 4. Predict

        `Predictor` runs every head on raw text: one label with probabilities for the intent,
        one tag per word and the slot spans they form.
        """),
        code("""
        predictor = Predictor(model)
        result = predictor.predict("play some jazz by miles davis on spotify")
        print(result["intent"]["label"], f'{result["intent"]["score"]:.0%}')
        print(list(zip(result["words"], result["slots"]["tags"])))
        result["slots"]["spans"]
        """),
        md("""
        ## 5. Where each piece is taught

        | lesson | what you learn |
        |---|---|
        | 01 encoders | the encoder registry, tokenisation, hidden states and pooling |
        | 02 heads and losses | heads, cross-entropy, masked token loss, weighted NLL |
        | 03 metrics | accuracy, macro-F1, entity-level F1, per-class reports, confusion matrices |
        | 04 single-task training | the training loop, learning-rate schedule, callbacks |
        | 05 multi-task training | task files, input groups, the summed loss, live dashboard |
        | 06 sampling and loss weighting | mixing datasets of different sizes, adaptive weights |
        | 07 hierarchical classification | label trees, DB_Linear, hierarchical metrics |
        | 08 save, load, predict | safe checkpoints, exact resume, inference |
        """),
        md("""
        ## Summary

        - One shared encoder with a small head per task; the training loss is
          $\\sum_t w_t \\mathcal{L}_t$.
        - `build_experiment(tasks, encoder)` gives a model and its encoded data,
          `Trainer(...).fit()` trains it, `Predictor` applies it to text.
        - Everything runs offline, on a CPU, from the data and weights on this machine.
        """),
        *exercise("""
        What share of the model's parameters sits in the two heads, and what share in the
        shared encoder? (Hint: `model.encoder.parameters()`, `model.heads.parameters()` and
        `p.numel()`.) Then predict the intent of three requests of your own.
        """, """
        n_encoder = sum(p.numel() for p in model.encoder.parameters())
        n_heads = sum(p.numel() for p in model.heads.parameters())
        print(f"encoder {n_encoder:,}  heads {n_heads:,}  "
              f"heads share {n_heads / (n_encoder + n_heads):.2%}")
        for r in predictor.predict(["wake me up at seven tomorrow",
                                    "will it rain in paris this weekend",
                                    "rate this book five stars"]):
            print(f'{r["text"]:40} {r["intent"]["label"]}')
        """),
    ]


@lesson("01_encoders")
def _encoders():
    return [
        header("01_encoders", "01 · Encoders: from words to vectors", [
            "list the encoder families of the registry and see which have weights here;",
            "explain what a tokenizer does to a sentence (sub-words, special tokens, `word_ids`);",
            "name the shapes of the encoder's outputs, `hidden (B, T, H)` and `pooled (B, H)`;",
            "write the three pooling rules (first, last, mean) and say when each is used;",
            "explore encoders interactively with `EncoderPicker`.",
        ], intro="""
        Every task in mtl_lib reads the output of the same encoder. This lesson opens it:
        how text becomes token ids, what comes out, and how one vector per sentence is made.
        """),
        parameters("""
        import os

        FAST = os.environ.get("MTL_LIB_FAST") == "1"
        ENCODER = "tiny-bert" if FAST else "minilm"  # the encoder studied below
        """),
        setup_cell("""
        import matplotlib.pyplot as plt
        import numpy as np
        import torch
        from IPython.display import display

        from mtl_lib import (EncoderNotAvailable, data_root, list_encoders, load_encoder,
                             tiny_encoder)
        from mtl_lib.data import read_jointbert
        from mtl_lib.models.encoders import ENCODER_TABLE, POOLING
        from mtl_lib.ui.encoder_picker import EncoderPicker
        """),
        md("""
        ## 1. The registry

        Five families from the literature, each with its configurations (the first is the
        family's default), plus `minilm`, the default encoder, whose weights are installed
        with the library. A family fixes the architecture, the tokenizer type and where the
        sentence summary token sits.
        """),
        code("""
        for family, names in ENCODER_TABLE.items():
            print(f"{family:10} pooling={POOLING[family]:5} {', '.join(names)}")
        available = [i.name for i in list_encoders() if i.available]
        print("\\nweights on this machine:", available)
        """),
        md("""
        Loading never falls back to random weights: a missing encoder raises
        `EncoderNotAvailable`, whose message says how to provide the weights.
        """),
        code("""
        missing = [i.name for i in list_encoders() if not i.available]
        try:
            load_encoder(missing[0] if missing else "no-such-encoder")
        except EncoderNotAvailable as err:
            print(err)
        """),
        code("""
        if ENCODER.startswith("tiny-"):
            texts = [" ".join(r["words"]) for r in read_jointbert(data_root() / "snips" / "train")]
            encoder = tiny_encoder(ENCODER[5:].upper(), texts)
        else:
            encoder = load_encoder(ENCODER)
        print(encoder.name, encoder.family, "pooling:", encoder.pooling)
        print(f"{encoder.num_parameters():,} parameters, hidden size H = {encoder.hidden_size}, "
              f"vocabulary {len(encoder.tokenizer):,}")
        """),
        md("""
        ## 2. Tokenisation

        The tokenizer cuts text into pieces from a fixed vocabulary (WordPiece for BERT: a
        word that is not in the vocabulary is split, later pieces marked `##`) and adds the
        family's special tokens: `[CLS]` first and `[SEP]` last for BERT. Our datasets come as
        words, so mtl_lib tokenises with `is_split_into_words=True`; `word_ids()` then says which
        word each token came from (`None` for special tokens). Tagging needs this map: a word's
        tag is read at its **first** token.
        """),
        code("""
        words = "book a table at gallagher's steakhouse for 7pm".split()
        enc = encoder.tokenize([words], is_split_into_words=True)
        tokens = encoder.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
        for tok, wid in zip(tokens, enc.word_ids(0)):
            print(f"{tok:14} word {wid}" if wid is not None else f"{tok:14} (special)")
        """),
        md("""
        A sentence pair (paraphrase detection) is encoded as one sequence,
        `[CLS] a [SEP] b [SEP]`; families trained with segments mark the second sentence with
        `token_type_ids = 1`.
        """),
        code("""
        pair = encoder.tokenize(["the cat sat"], text_pair=["a cat was sitting"])
        print(encoder.tokenizer.convert_ids_to_tokens(pair["input_ids"][0]))
        print(pair.get("token_type_ids"))
        """),
        md("""
        ### Families differ

        The tiny encoders (random weights, tokenizer trained in a second on a few sentences)
        show each family's tokenizer and template. RoBERTa's byte-level BPE marks a leading
        space with `Ġ`, ALBERT and XLNet's SentencePiece with `▁`. XLNet puts its summary token
        `<cls>` at the **end** and pads on the left, which is why its pooling is `last`.
        """),
        code("""
        sentence = "Book a flight to Denver".split()
        for family in ["BERT", "ROBERTA", "ALBERT", "XLNET"]:
            tiny = tiny_encoder(family)
            ids = tiny.tokenize([sentence], is_split_into_words=True)["input_ids"][0]
            print(f"{family:8} pad {tiny.tokenizer.padding_side:5} "
                  f"{tiny.tokenizer.convert_ids_to_tokens(ids)}")
        """),
        md(r"""
        ## 3. What comes out

        A batch of $B$ sentences padded to $T$ tokens goes in as `input_ids (B, T)` with an
        `attention_mask (B, T)` (1 for real tokens, 0 for padding). The encoder returns

        - `hidden (B, T, H)`: one vector per token, read by tagging heads;
        - `pooled (B, H)`: one vector per sentence, read by classification heads.

        Pooling reduces the $T$ token vectors $h_1, \dots, h_T$ with mask $m_t \in \{0, 1\}$:

        $$\text{first: } h_1 \qquad \text{last: } h_{\max\{t \,:\, m_t = 1\}} \qquad
        \text{mean: } \frac{\sum_t m_t\, h_t}{\sum_t m_t}.$$

        `first` reads `[CLS]`, trained in BERT's pre-training to summarise the sentence; `last`
        reads XLNet's final `<cls>` whatever the padding; `mean` averages the real tokens, the
        rule sentence-embedding models such as all-MiniLM-L6-v2 were trained with.
        """),
        code("""
        sentences = ["play some jazz by miles davis", "put on a miles davis record",
                     "will it rain in paris tomorrow", "what is the weather in london",
                     "book a table for two tonight"]
        batch = encoder.tokenizer(sentences, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden, pooled = encoder(batch["input_ids"], batch["attention_mask"])
        print("input_ids", tuple(batch["input_ids"].shape), "-> hidden", tuple(hidden.shape),
              "pooled", tuple(pooled.shape))
        """),
        md("Mean pooling by hand agrees with `encoder.pool` in `mean` mode:"),
        code("""
        mask = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
        by_hand = (hidden * mask).sum(1) / mask.sum(1)        # (B, H)
        encoder.pooling = "mean"
        print(torch.allclose(by_hand, encoder.pool(hidden, batch["attention_mask"]), atol=1e-6))
        """),
        md(r"""
        ## 4. A picture: which sentences are close?

        With mean pooling, the cosine similarity $\cos(u, v) = u^\top v / (\|u\|\|v\|)$ of two
        sentence vectors measures how alike the sentences are. MiniLM puts the two music
        requests and the two weather questions close together. (In fast mode the encoder is
        random, so the picture shows nothing but noise: run in full mode to see the effect.)
        """),
        code("""
        vectors = torch.nn.functional.normalize(encoder.pool(hidden, batch["attention_mask"]), dim=-1)
        similarity = (vectors @ vectors.T).numpy()  # (B, B)
        fig, ax = plt.subplots(figsize=(6.5, 5))
        im = ax.imshow(similarity, cmap="viridis", vmin=similarity.min(), vmax=1)
        ax.set_xticks(range(len(sentences)), sentences, rotation=35, ha="right")
        ax.set_yticks(range(len(sentences)), sentences)
        for (i, j), v in np.ndenumerate(similarity):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.7 else "k")
        fig.colorbar(im, label="cosine similarity")
        ax.set_title(f"Mean-pooled sentence vectors of {encoder.name}")
        plt.show()
        encoder.pooling = POOLING[encoder.family]  # back to the family's default
        """),
        md("""
        ## 5. Explore

        `EncoderPicker` shows a family's configurations, whether their weights are here, their
        size, and how a sentence of your own is tokenised (pieces of one word share a colour).
        Pick an unavailable one to read how to provide it.
        """),
        code("""
        picker = EncoderPicker(value=ENCODER)
        display(picker)
        """),
        code("""
        picker.value = "tiny-xlnet"  # drive it from code too: the table below changes
        print(picker.encoder.name, picker.encoder.pooling, picker.encoder.tokenizer.padding_side)
        """),
        md("""
        ## Summary

        - The registry knows five families and their configurations; `minilm` is bundled,
          the others load from local weights or raise `EncoderNotAvailable` with a fix.
        - Tokenisation adds special tokens and splits rare words; `word_ids()` maps tokens back
          to words, which is how word tags are aligned.
        - The encoder returns `hidden (B, T, H)` and `pooled (B, H)`; pooling is `first`,
          `last` (XLNet) or `mean`.
        """),
        *exercise("""
        Compare **first** and **mean** pooling for the five sentences above: compute both
        similarity matrices, print each sentence's nearest other sentence, and the lowest and
        highest similarity between two different sentences. Do the rules agree on the
        neighbours? Which one separates unrelated sentences more clearly, and why might that
        be for MiniLM? (Run in full mode for a meaningful answer.)
        """, """
        for rule in ["first", "mean"]:
            encoder.pooling = rule
            v = torch.nn.functional.normalize(encoder.pool(hidden, batch["attention_mask"]), dim=-1)
            sim = (v @ v.T).fill_diagonal_(-1)  # ignore each sentence's similarity to itself
            off_diagonal = sim[sim > -1]
            print(f"{rule}: similarities of different sentences from {off_diagonal.min():.2f} "
                  f"to {off_diagonal.max():.2f}")
            for i, j in enumerate(sim.argmax(1).tolist()):
                print(f"   {sentences[i]:32} -> {sentences[j]}")
        encoder.pooling = POOLING[encoder.family]
        # With MiniLM both rules pair the music requests and the weather questions, but with
        # `first` every pair looks alike (about 0.5 to 0.9), while `mean` puts unrelated
        # sentences near 0. all-MiniLM-L6-v2 was fine-tuned as a sentence encoder through
        # mean pooling: its training shaped the mean vector, not the [CLS] one. (For a
        # classification head this matters less: fine-tuning trains whatever is pooled.)
        """),
    ]


@lesson("02_heads_and_losses")
def _heads_and_losses():
    return [
        header("02_heads_and_losses", "02 · Heads and losses", [
            "build the head of each task type and predict the shape of its output;",
            "write the cross-entropy loss and check mtl_lib's against a computation by hand;",
            "explain why token losses skip positions labelled -100, and compute the NER loss;",
            "write the class-weighted NLL loss of DB_Linear and compute inverse-frequency weights;",
            "see why a task with no labels in a batch contributes 0, not NaN.",
        ], intro="""
        A head turns the encoder's vectors into scores (*logits*) for its task; a loss turns
        scores and gold labels into one number to minimise. Both are small, and every detail
        (which positions count, how classes are weighted) changes what the model learns.
        """),
        parameters("""
        import os

        FAST = os.environ.get("MTL_LIB_FAST") == "1"
        ENCODER = "tiny-bert" if FAST else "minilm"
        MAX_EXAMPLES = 64  # a few SNIPS utterances are enough: nothing is trained here
        """),
        setup_cell("""
        import matplotlib.pyplot as plt
        import numpy as np
        import torch
        import torch.nn.functional as F
        from matplotlib.colors import ListedColormap
        from matplotlib.patches import Patch

        from mtl_lib import (CrossEntropyLoss, MultiLabelLoss, NERLoss, WeightedNLLLoss,
                             build_experiment, data_root, load_encoder, make_head, snips_tasks,
                             tiny_encoder)
        from mtl_lib.data import Collator, align_word_labels, read_jointbert
        from mtl_lib.models.losses import class_weights

        _ = torch.manual_seed(0)
        """),
        md("""
        ## 1. Heads

        Every head is dropout followed by one linear layer, $z = W\\,\\mathrm{dropout}(v) + b$
        with $W \\in \\mathbb{R}^{C \\times H}$. What differs is what it reads: sequence-level
        heads read the pooled vector `(B, H)` and give `(B, C)`; the tagging head reads every
        token `(B, T, H)` and gives `(B, T, C)`. A pair task uses the classification head (the
        tokenizer already joined the two sentences); multi-label differs only in its loss.
        """),
        code("""
        B, T, H = 4, 12, 384
        hidden, pooled = torch.randn(B, T, H), torch.randn(B, H)
        for task_type, C in [("classification", 7), ("pair_classification", 2),
                             ("tagging", 72), ("multilabel", 5), ("hierarchical", 50)]:
            head = make_head(task_type, hidden_size=H, num_labels=C)
            out = head(hidden, pooled)
            n = sum(p.numel() for p in head.parameters())
            print(f"{task_type:20} -> {tuple(out.shape)!s:14} {n:,} parameters = H*C + C")
        """),
        md(r"""
        ## 2. Cross-entropy

        Softmax turns the logits $z_n \in \mathbb{R}^C$ of example $n$ into probabilities
        $p_{n,c} = e^{z_{n,c}} / \sum_{c'} e^{z_{n,c'}}$; cross-entropy is the mean negative
        log-probability of the gold class $y_n$:

        $$\mathcal{L}_{\text{CE}} = -\frac{1}{N} \sum_{n=1}^{N} \log p_{n, y_n}.$$

        A confident right answer costs almost 0, a confident wrong one a lot, and a uniform
        guess over $C$ classes costs exactly $\log C$.
        """),
        code("""
        logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [1.0, 1.0, 1.0]])
        labels = torch.tensor([0, 1, 2])
        p = logits.softmax(-1)
        by_hand = -torch.log(p[torch.arange(3), labels]).mean()
        print(f"mtl_lib {CrossEntropyLoss()(logits, labels).item():.6f}  by hand {by_hand.item():.6f}")
        print(f"uniform guess: loss of the third example {-torch.log(p[2, 2]).item():.4f} "
              f"= log 3 = {np.log(3):.4f}")
        """),
        md("""
        ## 3. Token losses and the label -100

        Slot tags belong to *words*, but the model scores *tokens*. We give each word's tag to
        its first token and the label -100 to everything else: special tokens, later pieces of
        a split word and padding. The loss counts only positions whose label is not -100.
        """),
        code(r"""
        if ENCODER.startswith("tiny-"):
            texts = [" ".join(r["words"]) for r in read_jointbert(data_root() / "snips" / "train")]
            encoder = tiny_encoder(ENCODER[5:].upper(), texts)
        else:
            encoder = load_encoder(ENCODER)
        model, groups = build_experiment(snips_tasks(MAX_EXAMPLES), encoder=encoder)
        slot_labels = model.tasks["slots"].labels

        words = ["add", "tuesday", "feelings", "to", "my", "playlist"]
        tags = ["O", "B-entity_name", "I-entity_name", "O", "B-playlist_owner", "O"]
        enc = encoder.tokenize([words], is_split_into_words=True)
        aligned = align_word_labels(enc.word_ids(0), [slot_labels.index(t) for t in tags])
        for tok, wid, lab in zip(encoder.tokenizer.convert_ids_to_tokens(enc["input_ids"][0]),
                                 enc.word_ids(0), aligned):
            print(f"{tok:12} word {str(wid):5} label {lab:5} {slot_labels[lab] if lab >= 0 else ''}")
        """),
        md(r"""
        With $\mathcal{M}$ the set of counted positions $(n, t)$ in the batch,

        $$\mathcal{L}_{\text{NER}} = -\frac{1}{|\mathcal{M}|} \sum_{(n,t) \in \mathcal{M}}
        \log p_{n,t,y_{n,t}}, \qquad \mathcal{M} = \{(n, t) : y_{n,t} \neq -100\}.$$

        Every *word* weighs the same, so a long sentence counts more than a short one. Here is
        a real batch of SNIPS, through the untrained model:
        """),
        code("""
        tok = encoder.tokenizer
        label_kinds = {task: model.types[task].label_kind for task in model.tasks}
        batch = Collator.for_tokenizer(tok, label_kinds)(groups[0].splits["train"][:8])
        model.eval()
        with torch.no_grad():
            logits = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        y = batch["labels"]["slots"]  # (B, T), -100 where not counted
        counted = y != -100
        by_hand = -logits["slots"].log_softmax(-1)[counted].gather(1, y[counted][:, None]).mean()
        print("logits", {t: tuple(v.shape) for t, v in logits.items()})
        print(f"counted positions {counted.sum().item()} of {counted.numel()}")
        print(f"NERLoss {NERLoss()(logits['slots'], y).item():.5f}  by hand {by_hand.item():.5f}")
        losses = model.compute_losses(logits, batch["labels"])
        print("every task's loss:", {t: round(v.item(), 4) for t, v in losses.items()})
        """),
        md(r"""
        The untrained heads start near the uniform guess: about $\log 7 \approx 1.95$ for the
        7 intents and $\log 72 \approx 4.28$ for the slot tags (heads start with tiny weights,
        so their logits are close to 0).

        ## 4. Class-weighted NLL (the DB_Linear loss)

        When some classes are rare, the mean loss is dominated by the frequent ones. Weighting
        each example by a weight $w_c$ of its gold class and dividing by the total weight,

        $$\mathcal{L}_{\text{wNLL}} = \frac{\sum_n w_{y_n}\,(-\log p_{n, y_n})}{\sum_n w_{y_n}},$$

        lets rare classes count more. With *inverse-frequency* weights
        $w_c = N / (C\, n_c)$ ($n_c$ examples of class $c$ among $N$), a perfectly balanced set
        gets all weights 1. `WeightedNLLLoss` applies LogSoftmax itself and matches PyTorch's
        `nll_loss` with weights:
        """),
        code("""
        train_labels = torch.tensor([0] * 80 + [1] * 15 + [2] * 5)  # a skewed label set
        w = class_weights(train_labels, num_classes=3, scheme="inverse_frequency")
        print("weights", w.numpy().round(3), "  N / (C n_c) for n_c = 80, 15, 5")
        logits = torch.randn(6, 3)
        labels = torch.tensor([0, 0, 1, 2, 2, 0])
        ours = WeightedNLLLoss(w)(logits, labels)
        torch_ref = F.nll_loss(F.log_softmax(logits, -1), labels, weight=w)
        print(f"WeightedNLLLoss {ours.item():.6f}  torch {torch_ref.item():.6f}")
        """),
        md(r"""
        ## 5. Multi-label, and tasks without labels

        A multi-label task makes $C$ independent yes/no decisions: a sigmoid per label and the
        binary cross-entropy $-[y \log \sigma(z) + (1-y) \log(1 - \sigma(z))]$, averaged over
        the counted entries.

        In multi-task training a batch may hold **no** labels for some task (its examples
        come from another dataset). A plain mean over zero positions is $0/0 = $ NaN, and one
        NaN would poison the summed loss. mtl_lib's losses return a zero that still belongs to
        the graph, so `backward()` works and the task simply adds no gradient:
        """),
        code("""
        bce = MultiLabelLoss()(torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[1.0, 0.0, -100.0]]))
        print(f"multi-label BCE over 2 counted entries: {bce.item():.4f}")
        z = torch.randn(2, 5, 4, requires_grad=True)
        nothing = torch.full((2, 5), -100)
        print("plain torch:", F.cross_entropy(z.reshape(-1, 4), nothing.reshape(-1)).item())
        loss = NERLoss()(z, nothing)
        loss.backward()
        print("NERLoss:", loss.item(), "| gradient is all zero:", bool((z.grad == 0).all()))
        """),
        md("""
        ## 6. A picture

        Left: the cost of one example against the probability the model gives its gold class
        ($-\\log p$), with two class weights. Right: which positions of the SNIPS batch above
        count in the slot loss (blue) and which carry the label -100: special tokens and later
        pieces of a word (orange), padding (white).
        """),
        code("""
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
        p = np.linspace(0.01, 1, 200)
        for weight in [1.0, 3.0]:
            ax1.plot(p, -weight * np.log(p), label=f"class weight {weight:g}")
        ax1.set(xlabel="probability of the gold class", ylabel="loss of the example",
                title="Cross-entropy: -w log p")
        ax1.legend()
        ax1.grid(alpha=0.3)
        # 0 = padding, 1 = real token labelled -100, 2 = counted (a word's first token)
        state = (batch["attention_mask"] + counted.long()).numpy()
        colors = ["white", "#ffcc80", "#1565c0"]
        ax2.imshow(state, cmap=ListedColormap(colors), vmin=0, vmax=2, aspect="auto")
        ax2.legend(handles=[Patch(facecolor=c, edgecolor="0.5", label=t) for c, t in
                            zip(colors, ["padding (-100)", "special token or word piece (-100)",
                                         "counted: first token of a word"])],
                   loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=8)
        ax2.set(xlabel="token position t", ylabel="example n",
                title=f"Slot loss counts {counted.sum().item()} of {counted.numel()} positions")
        plt.show()
        """),
        md("""
        ## Summary

        - Heads are dropout + linear: `(B, H) -> (B, C)` for sentences,
          `(B, T, H) -> (B, T, C)` for tokens.
        - Cross-entropy averages $-\\log p$ of the gold class; an untrained head costs about
          $\\log C$.
        - Token losses count only word-start tokens: all other positions are labelled -100.
        - Class-weighted NLL divides by the sum of weights; inverse-frequency weights lift
          rare classes.
        - A task with no labels in a batch adds 0 (not NaN) and no gradient.
        """),
        *exercise("""
        Take the real batch of section 3. (a) Compute the intent loss of the untrained model
        and compare it with $\\log 7$. (b) Compute inverse-frequency weights for the *intent*
        labels of `groups[0].splits["train"]` and the class-weighted intent loss of the batch
        with `WeightedNLLLoss`. Which intent is the rarest in this sample?
        """, """
        intent_labels = model.tasks["intent"].labels
        with torch.no_grad():
            out = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        gold = batch["labels"]["intent"]
        print(f"intent loss {CrossEntropyLoss()(out['intent'], gold).item():.4f} "
              f"vs log 7 = {np.log(7):.4f}")
        ids = torch.tensor([f["labels"]["intent"] for f in groups[0].splits["train"]])
        w = class_weights(ids, len(intent_labels), "inverse_frequency")
        print({lab: round(x, 2) for lab, x in zip(intent_labels, w.tolist())})
        print("rarest:", intent_labels[int(w.argmax())])
        print(f"class-weighted: {WeightedNLLLoss(w)(out['intent'], gold).item():.4f}")
        """),
    ]


@lesson("03_metrics")
def _metrics():
    return [
        header("03_metrics", "03 · Metrics: how good is the model, and where does it fail?", [
            "compute accuracy, per-class precision / recall / F1 and macro-F1 by hand;",
            "explain entity-level F1 for tagging, and why `seqeval_*` and `snips_*` agree;",
            "read a per-class report and a confusion matrix of a trained model;",
            "find the weakest classes with `ClassMetricsExplorer`.",
        ], intro="""
        A single number hides a lot: 95% intent accuracy may mean one intent is never found.
        This lesson defines the metrics mtl_lib reports, checks them on examples small enough
        to do by hand, then opens up a trained SNIPS model class by class.
        """),
        parameters("""
        import os

        FAST = os.environ.get("MTL_LIB_FAST") == "1"
        ENCODER = "tiny-bert" if FAST else "minilm"
        DEMO_RUN = "../runs/demo"                     # written by `make demo`, reused if present
        MAX_EXAMPLES = 1000 if FAST else 4000        # only if no checkpoint: train this much
        MAX_STEPS = 150 if FAST else 300
        ENCODER_LR = 1e-3 if FAST else 1e-4
        HEAD_LR = 3e-3 if FAST else 1e-3
        """),
        setup_cell("""
        from pathlib import Path

        from IPython.display import display
        from seqeval.metrics import f1_score as seqeval_f1
        from seqeval.scheme import IOB2

        from mtl_lib import (Trainer, TrainerConfig, build_experiment, build_groups,
                             classification_accuracy, classification_f1_score, confusion_matrix,
                             data_root, evaluate, load_encoder, load_model, per_class_report,
                             seqeval_f1_score, snips_f1_score, snips_tasks, tiny_encoder)
        from mtl_lib.data import read_jointbert
        from mtl_lib.evaluation.evaluate import collect_predictions
        from mtl_lib.evaluation.metrics import conll_chunks, per_entity_report
        from mtl_lib.ui.plots import plot_confusion_matrix, plot_per_class
        from mtl_lib.ui.class_metrics import ClassMetricsExplorer
        """),
        md(r"""
        ## 1. One label per example

        **Accuracy** is the share of right answers, $\frac{1}{N}\sum_n [\hat y_n = y_n]$. For
        each class $c$, counting true positives $TP_c$, false positives $FP_c$ and false
        negatives $FN_c$,

        $$P_c = \frac{TP_c}{TP_c + FP_c}, \qquad R_c = \frac{TP_c}{TP_c + FN_c}, \qquad
        F1_c = \frac{2 P_c R_c}{P_c + R_c}, \qquad
        \text{macro-F1} = \frac{1}{C}\sum_c F1_c .$$

        Macro-F1 gives every class the same say, so a rare class that is always missed pulls
        it down even when accuracy looks fine. A small example, by hand:
        *a* is predicted once right and once as *b*: $P_a = 1, R_a = \tfrac12, F1_a = \tfrac23$;
        *b*: $P_b = \tfrac12, R_b = 1, F1_b = \tfrac23$; *c*: $F1_c = 1$; macro-F1 $= \tfrac79$.
        """),
        code("""
        y_true = ["a", "a", "b", "c"]
        y_pred = ["a", "b", "b", "c"]
        print("accuracy", classification_accuracy(y_true, y_pred), "(by hand 3/4)")
        print(f"macro-F1 {classification_f1_score(y_true, y_pred):.4f} (by hand {7 / 9:.4f})")
        per_class_report(y_true, y_pred)
        """),
        md(r"""
        ## 2. Tags: scoring entities, not tokens

        For slot filling what matters is whole *entities*: "miles davis" is one `artist`. Tags
        are grouped into chunks (type, first word, last word); a predicted chunk is right only
        if type **and** both boundaries match. Precision, recall and F1 are then computed over
        chunks, $P = |\text{pred} \cap \text{gold}| / |\text{pred}|$,
        $R = |\text{pred} \cap \text{gold}| / |\text{gold}|$.

        How to read ill-formed sequences matters. The `conlleval` script (used for SNIPS and
        CoNLL results) also opens a chunk at an `I-` tag that follows `O`; `snips_*` metrics
        implement these rules in a few readable lines (`conll_chunks`), and `seqeval_*` use the
        seqeval library in its default mode, which follows the same rules: the two agree.
        Strict IOB2 (seqeval's `mode="strict"`) would throw such a chunk away:
        """),
        code("""
        gold = [["O", "B-artist", "I-artist", "O", "B-playlist"]]
        pred = [["O", "I-artist", "I-artist", "O", "B-playlist"]]  # no B-: an ill-formed start
        print("chunks of the prediction:", conll_chunks(pred[0]))
        print("snips_f1_score  ", snips_f1_score(gold, pred))
        print("seqeval_f1_score", seqeval_f1_score(gold, pred))
        print("strict IOB2     ", seqeval_f1(gold, pred, mode="strict", scheme=IOB2))
        """),
        md("""
        ## 3. A trained model

        If `make demo` has run, its checkpoint (MiniLM, one epoch of SNIPS) is reused;
        otherwise (and always in fast mode) a small model is trained here first.
        """),
        code("""
        demo = Path(DEMO_RUN)
        if not FAST and (demo / "best" / "config.json").exists():
            model = load_model(demo)
            print("loaded the checkpoint of `make demo` from", demo.resolve())
        else:
            if ENCODER.startswith("tiny-"):
                texts = [" ".join(r["words"])
                         for r in read_jointbert(data_root() / "snips" / "train")]
                encoder = tiny_encoder(ENCODER[5:].upper(), texts, hidden_size=128)
            else:
                encoder = load_encoder(ENCODER)
            model, train_groups = build_experiment(snips_tasks(MAX_EXAMPLES), encoder=encoder)
            config = TrainerConfig(max_steps=MAX_STEPS, encoder_lr=ENCODER_LR,
                                   classifier_lr=HEAD_LR, eval_every=MAX_STEPS, progress=False)
            Trainer(model, train_groups, config).fit()
            print(f"trained {model.encoder.name} for {MAX_STEPS} steps")
        """),
        md("""
        The dev split is read and encoded with the model's own tokenizer and label lists
        (`build_groups`); `evaluate` gives every metric the task asks for, and
        `collect_predictions` the gold and predicted labels behind them.
        """),
        code("""
        groups = build_groups(list(model.tasks.values()), model.encoder.tokenizer,
                              splits=("dev",))
        for task, scores in evaluate(model, groups).items():
            print(f"{task:13}", ", ".join(f"{m} {v:.1%}" for m, v in scores.items()))
        preds = collect_predictions(model, groups[0], "dev")
        print(len(preds["intent"]["true"]), "dev utterances;", preds["slots"]["true"][0])
        """),
        md("""
        ## 4. Class by class

        The per-class report lists precision, recall, F1 and support (number of gold examples)
        of each intent; the bar chart sorts them, with macro-F1 as a dashed line.
        """),
        code("""
        intents = model.tasks["intent"].labels
        report = per_class_report(preds["intent"]["true"], preds["intent"]["pred"], intents)
        plot_per_class(report, metric="f1")
        """),
        md("""
        The confusion matrix counts, for each true class (row), how often each class was
        predicted (column). Normalised by rows, its diagonal is each class's recall and the
        off-diagonal cells show which classes get mixed up.
        """),
        code("""
        matrix = confusion_matrix(preds["intent"]["true"], preds["intent"]["pred"], intents)
        plot_confusion_matrix(matrix, intents)
        """),
        md("""
        For slots, the report is per **entity type** (seqeval). There are 39 types; the ten
        weakest tell where to look:
        """),
        code("""
        slot_report = per_entity_report(preds["slots"]["true"], preds["slots"]["pred"])
        plot_per_class(slot_report, metric="f1", top=10, ascending=True)
        """),
        md("""
        ## 5. Explore

        `ClassMetricsExplorer` puts it together: choose the task, sort the table, pick a class
        to see what it is confused with.
        """),
        code("""
        explorer = ClassMetricsExplorer(model, groups)
        display(explorer)
        """),
        md("""
        ## Summary

        - Accuracy counts right answers; macro-F1 averages per-class F1, so every class
          counts the same.
        - Tagging is scored per entity: type and both boundaries must match. `snips_*` and
          `seqeval_*` follow the conlleval rules and agree; strict IOB2 differs on ill-formed
          tag sequences.
        - Per-class reports and confusion matrices show *which* classes fail and with what.
        """),
        *exercise("""
        Find the slot type with the lowest F1 among types with at least 5 gold entities, and
        print three dev utterances where a gold entity of that type was missed, with the gold
        and predicted tags side by side. (The records are in `groups[0].records["dev"]`, in
        the same order as `preds`.)
        """, """
        worst = min((r for r in slot_report if r["support"] >= 5), key=lambda r: r["f1"])
        print("weakest type:", worst)
        shown = 0
        for i, (gold, pred) in enumerate(zip(preds["slots"]["true"], preds["slots"]["pred"])):
            gold_chunks = {c for c in conll_chunks(gold) if c[0] == worst["label"]}
            if gold_chunks - set(conll_chunks(pred)) and shown < 3:
                words = groups[0].records["dev"][preds["slots"]["index"][i]]["words"]
                for w, g, p in zip(words, gold, pred):
                    print(f"  {w:15} {g:28} {p}")
                print()
                shown += 1
        """),
    ]


@lesson("04_single_task_training")
def _single_task():
    return [
        header("04_single_task_training", "04 · Training one task", [
            "describe one training step: batch, encoder pass, loss, backward, AdamW step;",
            "explain why the encoder and the head get different learning rates;",
            "write the warm-up + linear-decay schedule and check it on a plot;",
            "measure how much padding length-bucketed batches save;",
            "attach callbacks (a live dashboard, your own early stop) to `Trainer`.",
        ], intro="""
        Before training several tasks, train one: SNIPS intent detection. Everything here
        (the loop, the schedule, evaluation, checkpoints, callbacks) is reused unchanged by
        multi-task training in the next lesson.
        """),
        parameters("""
        import os

        FAST = os.environ.get("MTL_LIB_FAST") == "1"
        ENCODER = "tiny-bert" if FAST else "minilm"
        MAX_EXAMPLES = 1000 if FAST else None  # SNIPS training utterances (None: all 13,084)
        MAX_STEPS = 150 if FAST else 400       # one epoch of SNIPS is ~409 steps of 32
        BATCH_SIZE = 16 if FAST else 32
        ENCODER_LR = 1e-3 if FAST else 1e-4
        HEAD_LR = 3e-3 if FAST else 1e-3
        """),
        setup_cell("""
        from pathlib import Path

        import torch
        from IPython.display import display

        from mtl_lib import (Trainer, TrainerConfig, build_experiment, data_root, load_encoder,
                             snips_tasks, tiny_encoder)
        from mtl_lib.data import length_bucketed_batches, read_jointbert
        from mtl_lib.training.callbacks import CheckpointCallback
        from mtl_lib.ui.live_dashboard import LiveDashboard
        from mtl_lib.ui.plots import plot_learning_rate, plot_losses, plot_metrics
        """),
        code(ENCODER_CELL),
        code("""
        intent_only = snips_tasks(MAX_EXAMPLES)[:1]  # [intent]: drop the slots task
        model, groups = build_experiment(intent_only, encoder=encoder)
        print(model.tasks["intent"].labels)
        print({split: len(features) for split, features in groups[0].splits.items()})
        """),
        md(r"""
        ## 1. One step

        Each step of `Trainer.fit` takes the next batch, runs the encoder and the head, computes
        the loss, back-propagates, clips the gradient norm to 1 and lets AdamW update the
        weights. AdamW keeps running means of each gradient $g$ and of $g^2$ and moves each
        weight by $\eta\, \hat m / (\sqrt{\hat v} + \epsilon)$, plus a small *weight decay*
        $\eta \lambda \theta$ pulling weights towards 0.

        **Two learning rates.** The encoder is pretrained and should move gently
        (`encoder_lr`, e.g. $10^{-4}$); the head starts from scratch and needs to move fast
        (`classifier_lr`, e.g. $10^{-3}$). A single rate is either too slow for the head or
        destroys what the encoder knows.

        **Schedule.** The rate rises linearly during the first $W = \lfloor \rho S \rfloor$ of
        the $S$ steps (warm-up ratio $\rho$, default 0.1), then falls linearly to 0:

        $$\eta_s = \eta \cdot \begin{cases} \dfrac{s + 1}{W + 1} & s < W \\[2mm]
        \dfrac{S - s}{S - W} & s \ge W. \end{cases}$$

        Warm-up avoids large, badly-aimed steps while AdamW's running means are still empty.
        """),
        code("""
        config = TrainerConfig(max_steps=MAX_STEPS, batch_size=BATCH_SIZE, encoder_lr=ENCODER_LR,
                               classifier_lr=HEAD_LR, warmup_ratio=0.1,
                               eval_every=max(1, MAX_STEPS // 6), output_dir="runs/04_intent",
                               progress=False)
        config
        """),
        md(r"""
        ## 2. Batches with little padding

        A batch is padded to its longest sentence. Random batches mix short and long
        utterances, so many positions are padding: wasted computation. *Length-bucketed*
        batches sort shuffled chunks of the data by length before cutting them into batches:
        neighbours have similar lengths, and batches are still visited in random order. The
        padding share of a batch $b$ is $1 - \sum_{i \in b} \ell_i / (|b| \max_{i \in b} \ell_i)$.
        """),
        code("""
        lengths = [len(f["input_ids"]) for f in groups[0].splits["train"]]
        gen = torch.Generator().manual_seed(0)
        perm = torch.randperm(len(lengths), generator=gen).tolist()
        plans = {"random": [perm[i:i + 32] for i in range(0, len(perm), 32)],
                 "length-bucketed": length_bucketed_batches(lengths, 32, gen)}
        for name, batches in plans.items():
            real = sum(lengths[i] for b in batches for i in b)
            padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
            print(f"{name:16} {len(batches)} batches, padding {1 - real / padded:.1%} of positions")
        """),
        md("""
        ## 3. Train, watching live

        A callback is any object with some of the methods `on_fit_start`, `on_step_end`,
        `on_batch_end`, `on_evaluate` and `on_fit_end`; the trainer calls them as it goes
        (evaluation and checkpoints are callbacks too). `LiveDashboard` is
        one: it averages the loss over every few steps, draws it with the dev scores on a
        shared epoch axis, and redraws inside its own widget. Here is a second, written on the
        spot, that prints each evaluation.
        """),
        code("""
        class PrintEvaluations:
            def on_evaluate(self, trainer, metrics):
                acc = metrics["intent"]["classification_accuracy"]
                print(f"step {trainer.step:4}: dev accuracy {acc:.1%}")


        board = LiveDashboard(every_n=5)
        display(board)
        trainer = Trainer(model, groups, config, callbacks=[board, PrintEvaluations()])
        history = trainer.fit()
        """),
        md("""
        The same history, drawn as static figures: loss per step (raw and smoothed), dev
        metrics, and the learning rate, which shows the warm-up and the linear decay.
        """),
        code("plot_losses(history)"),
        code("plot_metrics(history)"),
        code("plot_learning_rate(history)  # the encoder's rate; the head's has the same shape"),
        md("""
        ## 4. Checkpoints

        With `output_dir`, the trainer's checkpoint callback keeps two checkpoints: `best/`,
        written whenever the dev score improves (here: intent accuracy, the task's first
        metric), and `last/`, the state at the end, from which training can resume exactly
        (lesson 08).
        """),
        code("""
        for path in sorted(Path("runs/04_intent").rglob("*")):
            if path.is_file():
                print(f"{str(path):52} {path.stat().st_size / 1e6:8.2f} MB")
        checkpoints = next(cb for cb in trainer.callbacks if isinstance(cb, CheckpointCallback))
        print("best dev score:", checkpoints.best_score)
        """),
        md("""
        ## Summary

        - A step: batch → encoder → head → loss → backward → clip → AdamW; the encoder gets
          a smaller learning rate than the fresh head.
        - The learning rate warms up linearly, then decays linearly to zero.
        - Length-bucketed batches remove most of the padding.
        - Callbacks observe (and can stop) training; `LiveDashboard` is a callback and a widget.
        - `best/` and `last/` checkpoints are written to `output_dir`.
        """),
        *exercise("""
        Write a callback that stops training as soon as the dev accuracy reaches 80% (set
        `trainer.should_stop = True`), and train a fresh model with `eval_every=10`. At which
        step does it stop? (Build a new model and encoder first: the one above is trained.)
        """, """
        class StopAt:
            def __init__(self, target):
                self.target = target

            def on_evaluate(self, trainer, metrics):
                if metrics["intent"]["classification_accuracy"] >= self.target:
                    trainer.should_stop = True


        if ENCODER.startswith("tiny-"):
            fresh_encoder = tiny_encoder(ENCODER[5:].upper(), texts, hidden_size=128)
        else:
            fresh_encoder = load_encoder(ENCODER)
        model2, groups2 = build_experiment(intent_only, encoder=fresh_encoder)
        trainer2 = Trainer(model2, groups2, config, eval_every=10, output_dir=None,
                           callbacks=[StopAt(0.80)])
        trainer2.fit()
        print(f"stopped at step {trainer2.step} of {trainer2.total_steps}; "
              f"dev accuracy {trainer2.history.last_metrics()['intent']['classification_accuracy']:.1%}")
        """),
    ]


@lesson("05_multi_task_training")
def _multi_task():
    return [
        header("05_multi_task_training", "05 · Training several tasks on one encoder", [
            "describe tasks in a task file and load it;",
            "explain input groups: tasks that share inputs share one encoder pass;",
            "write the multi-task loss and what its gradient does to the shared encoder;",
            "train SNIPS intent + slots jointly while watching a live dashboard;",
            "run your own experiments from the `ExperimentPanel`.",
        ], intro="""
        Lesson 04 trained one head. Now the same loop trains two heads on one encoder, and the
        two tasks help each other: knowing the slots (an `artist`, a `playlist`) says a lot
        about the intent, and the other way round.
        """),
        parameters("""
        import os

        FAST = os.environ.get("MTL_LIB_FAST") == "1"
        ENCODER = "tiny-bert" if FAST else "minilm"
        TASK_FILE = "../examples/tasks/snips.yml"
        MAX_EXAMPLES = 1000 if FAST else None  # per split; None: all of SNIPS
        MAX_STEPS = 150 if FAST else 800       # ~2 epochs of SNIPS at batch 32
        BATCH_SIZE = 16 if FAST else 32
        ENCODER_LR = 1e-3 if FAST else 1e-4
        HEAD_LR = 3e-3 if FAST else 1e-3
        PANEL_STEPS = 60 if FAST else 200      # the experiment panel's first run
        """),
        setup_cell("""
        from pathlib import Path

        from IPython.display import display

        from mtl_lib import (Trainer, TrainerConfig, build_experiment, data_root, load_encoder,
                             load_task_file, tiny_encoder)
        from mtl_lib.data import read_jointbert
        from mtl_lib.ui.plots import plot_losses, plot_metrics
        from mtl_lib.ui.experiment_panel import ExperimentPanel
        from mtl_lib.ui.live_dashboard import LiveDashboard
        """),
        md("""
        ## 1. Task files

        A task file lists the tasks by name (the format of the multi-task-NLP library, whose
        task-type names such as `SingleSenClassification` and `NER` are accepted): where the
        data is, its format, the label list, loss, metrics and loss weight. An optional
        `training:` section holds trainer options.
        """),
        code("print(Path(TASK_FILE).read_text())"),
        code("""
        task_file = load_task_file(TASK_FILE)
        for spec in task_file.tasks:
            spec.max_examples = MAX_EXAMPLES  # a subset in fast mode
            print(f"{spec.name:7} {spec.task_type:15} loss={spec.loss_type:17} "
                  f"weight={spec.loss_weight} metrics={spec.metrics}")
        print("training options in the file:", task_file.training)
        """),
        md("""
        ## 2. Input groups

        Both tasks read the same SNIPS utterances, so `build_experiment` puts them in **one
        input group**: each encoded example carries a label for every task of its group, and
        a batch of the group goes through the encoder once to feed both heads. (Tasks on
        different data, e.g. CoNLL NER, form their own groups; lesson 06 mixes them.)
        """),
        code(ENCODER_CELL),
        code("""
        model, groups = build_experiment(task_file, encoder=encoder)
        group = groups[0]
        print("groups:", [g.name for g in groups], "| tasks of the group:", group.task_names)
        example = group.splits["train"][0]
        print("input ids:", example["input_ids"])
        print("labels:", example["labels"])  # one per task; -100 where a token is not scored
        """),
        md(r"""
        ## 3. The multi-task loss

        For a batch, each head's loss $\mathcal{L}_t$ is computed as in lesson 02, and the
        trainer minimises their weighted sum (weights $w_t$ = each task's `loss_weight`):

        $$\mathcal{L} = \sum_t w_t \mathcal{L}_t, \qquad
        \nabla_{\theta_E}\mathcal{L} = \sum_t w_t \nabla_{\theta_E}\mathcal{L}_t, \qquad
        \nabla_{\theta_t}\mathcal{L} = w_t \nabla_{\theta_t}\mathcal{L}_t .$$

        Each head only sees its own task's gradient; the shared encoder $\theta_E$ gets the sum,
        so it is pushed towards features useful to **all** tasks. If one task's loss is much
        larger it dominates that sum; lesson 06 shows how to rebalance.
        """),
        md("""
        ## 4. Train, watching live

        The dashboard draws each task's loss (mean of every 5 steps) and each task's first dev
        metric on one epoch axis, inside its own widget. `intent+slots` is the group's
        *sentence accuracy*: intent and every slot right.
        """),
        code("""
        config = TrainerConfig(max_steps=MAX_STEPS, batch_size=BATCH_SIZE, encoder_lr=ENCODER_LR,
                               classifier_lr=HEAD_LR, eval_every=max(1, MAX_STEPS // 6),
                               progress=False)
        board = LiveDashboard(every_n=5)
        display(board)
        trainer = Trainer(model, groups, config, callbacks=[board])
        history = trainer.fit()
        """),
        code("""
        for task, scores in history.last_metrics().items():
            print(f"{task:13}", ", ".join(f"{m} {v:.1%}" for m, v in scores.items()))
        plot_losses(history)
        """),
        code("plot_metrics(history)"),
        md("""
        ## 5. Your own experiments

        The panel builds and trains an experiment from its controls: encoder, tasks (SNIPS
        intent and slots, CoNLL NER, MRPC paraphrase), examples per dataset, sampler, loss
        weighting, learning rates and steps. **Run** trains in the background with a live
        dashboard (so **Stop** works); errors (say, an encoder whose weights are not here)
        appear inside the panel. The cell after it runs it once from code.
        """),
        code("""
        panel = ExperimentPanel(encoder=ENCODER, max_examples=500, steps=PANEL_STEPS,
                                batch_size=16)
        panel.encoder_lr.value, panel.classifier_lr.value = ENCODER_LR, HEAD_LR
        display(panel)
        """),
        code("""
        panel_history = panel.run()  # the same as pressing Run, but waits until it is done
        print(panel.status.value, "| error:", panel.error)
        """),
        md("""
        In fast mode the panel's `tiny-bert` is random and its vocabulary comes from a few
        built-in sentences (the encoder of section 2 learned its vocabulary from SNIPS), so a
        short run learns little. Choose `minilm`, tick the tasks you want and press **Run**
        for a real result: about a minute per hundred steps on a laptop CPU.
        """),
        md("""
        ## Summary

        - A task file describes tasks (data, labels, loss, metrics, weight) and training
          options; `load_task_file` reads and validates it.
        - Tasks on the same inputs form an input group: one encoder pass feeds all their heads.
        - The trainer minimises $\\sum_t w_t \\mathcal{L}_t$; the encoder receives the sum of
          all tasks' gradients, each head only its own.
        - `LiveDashboard` and `ExperimentPanel` show training as it happens.
        """),
        *exercise("""
        Does multi-task training help the intent task here? Train an **intent-only** model
        with the same encoder type, data and number of steps, and compare its dev intent
        accuracy with the multi-task model's. (One run of each is a noisy comparison:
        what would you do to be sure?)
        """, """
        intent_spec = [s for s in load_task_file(TASK_FILE).tasks if s.name == "intent"]
        intent_spec[0].max_examples = MAX_EXAMPLES
        if ENCODER.startswith("tiny-"):
            single_encoder = tiny_encoder(ENCODER[5:].upper(), texts, hidden_size=128)
        else:
            single_encoder = load_encoder(ENCODER)
        single_model, single_groups = build_experiment(intent_spec, encoder=single_encoder)
        single = Trainer(single_model, single_groups, config).fit()
        key = "classification_accuracy"
        print(f"intent only: {single.last_metrics()['intent'][key]:.1%}   "
              f"intent + slots: {history.last_metrics()['intent'][key]:.1%}")
        # To be sure: repeat both with several seeds (TrainerConfig(seed=...)) and compare
        # the spread, not a single pair of numbers.
        """),
    ]


@lesson("06_sampling_and_loss_weighting")
def _sampling_weighting():
    return [
        header("06_sampling_and_loss_weighting",
               "06 · Mixing datasets: task sampling and loss weighting", [
            "explain why datasets of different sizes need a sampling strategy;",
            "compute temperature-sampling probabilities $p_i \\propto n_i^{1/T}$ and the annealed schedule;",
            "train SNIPS, CoNLL-2003 and MRPC together and plot the task mix;",
            "write the uncertainty and DWA loss weightings and watch their weights move.",
        ], intro="""
        With tasks on *different* datasets, two questions arise at every step: **which
        dataset** does the next batch come from (sampling), and **how much** does each task's
        loss count (weighting)? Both are small registered strategies in mtl_lib, selected by
        name in `TrainerConfig(sampler=..., weighting=...)`.
        """),
        parameters("""
        import os

        FAST = os.environ.get("MTL_LIB_FAST") == "1"
        ENCODER = "tiny-bert" if FAST else "minilm"
        TASK_FILE = "../examples/tasks/mixed.yml"  # SNIPS intent + slots, CoNLL NER, MRPC
        # training examples per dataset (None: all); unequal on purpose
        SUBSET = {"snips": 1000, "conll2003": 600, "mrpc": 200} if FAST else None
        MAX_STEPS = 150 if FAST else 600
        BATCH_SIZE = 16 if FAST else 32
        ENCODER_LR = 1e-3 if FAST else 1e-4
        HEAD_LR = 3e-3 if FAST else 1e-3
        """),
        setup_cell("""
        import matplotlib.pyplot as plt
        import numpy as np

        from mtl_lib import (Trainer, TrainerConfig, build_experiment, load_encoder,
                             load_task_file, tiny_encoder)
        from mtl_lib.data import read_split
        from mtl_lib.training.sampling import SAMPLERS, make_sampler
        from mtl_lib.training.weighting import WEIGHTINGS
        from mtl_lib.ui.plots import plot_losses, plot_sampler_mix
        """),
        md("""
        ## 1. Three datasets of different sizes

        The task file trains four tasks on three datasets: SNIPS (intent and slots share the
        utterances: one input group), CoNLL-2003 named entities and MRPC paraphrase pairs.
        The sampler chooses among the three **input groups**.
        """),
        code("""
        task_file = load_task_file(TASK_FILE)
        sizes = {}
        for spec in task_file.tasks:
            dataset = spec.path.split("/")[0]
            if SUBSET:
                spec.max_examples = SUBSET[dataset]
            records, _ = read_split(spec, "train")  # (records, the file they came from)
            sizes[dataset] = len(records)
        print(sizes)
        """),
        md(r"""
        ## 2. Sampling: which dataset next?

        With $n_i$ training batches in group $i$:

        - **proportional**: $p_i = n_i / \sum_j n_j$. Every example is seen equally often, so
          a small dataset gets few updates and its task may be under-trained;
        - **uniform**: $p_i = 1/K$. The small dataset is repeated many times per epoch of the
          big one, which risks over-fitting it;
        - **temperature** interpolates, $p_i \propto n_i^{1/T}$: $T = 1$ is proportional and
          $T \to \infty$ uniform ($T = 2$ is a common choice, the square root of the sizes);
        - **annealed** (Stickland & Murray, 2019) starts proportional and ends near uniform,
          $p_i \propto n_i^{\alpha}$ with $\alpha$ falling from 1 to 0.2 over training;
        - **round_robin** takes the groups in turn.

        Every sampler is a small class; the choice at step $s$ depends only on (seed, $s$), so
        a resumed run draws the same sequence.
        """),
        code("""
        print("registered samplers:", list(SAMPLERS))
        names, n = list(sizes), list(sizes.values())
        temperatures = np.linspace(1, 10, 50)
        probs = np.array([make_sampler("temperature", n, temperature=t).probabilities(0)
                          for t in temperatures])  # (len(T), K)
        progress = np.linspace(0, 1, 50)
        annealed = make_sampler("annealed", n)
        probs_annealed = np.array([annealed.probabilities(s) for s in progress])

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
        for k, name in enumerate(names):
            ax1.plot(temperatures, probs[:, k], label=f"{name} (n={n[k]})")
            ax2.plot(progress, probs_annealed[:, k], label=name)
        ax1.axhline(1 / len(n), color="0.5", ls=":", label="uniform")
        ax1.set(xlabel="temperature T", ylabel="probability of the dataset",
                title=r"Temperature sampling: $p_i \\propto n_i^{1/T}$")
        ax2.set(xlabel="fraction of training done", title="Annealed sampling")
        ax1.legend()
        for ax in (ax1, ax2):
            ax.grid(alpha=0.3)
        plt.show()
        """),
        md("""
        The sampler alone can be simulated: `choose(step)` for 3,000 steps, drawn as the share
        of each dataset in the last 200 steps. Annealing visibly shifts the mix towards the
        small dataset.
        """),
        code("""
        steps = 3000
        sampler = make_sampler("annealed", n, seed=0, total_steps=steps)
        simulated = [{"kind": "train", "step": s, "task": names[sampler.choose(s)]}
                     for s in range(steps)]
        plot_sampler_mix(simulated, window=200)
        """),
        md(r"""
        ## 3. Loss weighting: how much does each task count?

        The trainer minimises $\sum_t w_t \mathcal{L}_t$ over the tasks of the batch. The
        strategies:

        - **static**: $w_t$ = the task's `loss_weight` from the task file (default 1);
        - **equal**: $w_t = 1$ always;
        - **uncertainty** (Kendall, Gal & Cipolla, 2018) learns a log-variance $s_t$ per task
          with the heads and minimises
          $$\mathcal{L} = \sum_t \tfrac12 e^{-s_t} \mathcal{L}_t + \tfrac12 s_t .$$
          For a fixed $\mathcal{L}_t$ the best $s_t$ solves $-\tfrac12 e^{-s_t}\mathcal{L}_t +
          \tfrac12 = 0$, i.e. $e^{s_t} = \mathcal{L}_t$: the weight $\tfrac12 e^{-s_t} =
          1/(2\mathcal{L}_t)$ is small for a task with a large (noisy) loss, and the term
          $\tfrac12 s_t$ stops all weights from shrinking to 0;
        - **dwa**, Dynamic Weight Average (Liu, Johns & Davison, 2019): with
          $r_t = \bar{\mathcal{L}}_t^{(k-1)} / \bar{\mathcal{L}}_t^{(k-2)}$ the ratio of a
          task's mean loss over the last two windows of steps,
          $$w_t = K \frac{\exp(r_t / T)}{\sum_i \exp(r_i / T)} ,$$
          so a task whose loss falls slowly ($r_t$ near 1) gets more weight than one that
          falls fast; the weights sum to the number of tasks $K$.

        DWA fed with made-up losses: task A falls fast and then stops improving, task B keeps
        falling slowly. While A falls faster it gets the smaller weight; once A is flat
        ($r_A \to 1$) and B still falls ($r_B < 1$), the weights swap.
        """),
        code("""
        print("registered weightings:", list(WEIGHTINGS))
        dwa = WEIGHTINGS["dwa"](["A", "B"], window=10)
        losses = {"A": lambda s: 0.2 + 2.0 * np.exp(-s / 20),   # learned fast, then flat
                  "B": lambda s: 0.5 + 2.0 * np.exp(-s / 150)}  # keeps falling slowly
        weights = []
        for s in range(300):
            dwa.update({task: f(s) for task, f in losses.items()})
            weights.append(dwa.weights())
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.2), sharex=True)
        for task, f in losses.items():
            ax1.plot([f(s) for s in range(300)], label=f"task {task}")
            ax2.plot([w[task] for w in weights], label=f"task {task}")
        ax1.set(xlabel="step", ylabel="loss", title="Made-up task losses")
        ax2.set(xlabel="step", ylabel="weight", title="DWA weights (window 10, T = 2)")
        for ax in (ax1, ax2):
            ax.legend()
            ax.grid(alpha=0.3)
        plt.show()
        """),
        md("""
        ## 4. Training on all three datasets

        In fast mode the encoder's vocabulary is trained on sentences of all three datasets.
        The first run uses temperature sampling ($T = 2$) and static weights.
        """),
        code("""
        if ENCODER.startswith("tiny-"):
            texts = [" ".join(r["words"] + r.get("words_b", []))
                     for spec in task_file.tasks for r in read_split(spec, "train")[0]]
            encoder = tiny_encoder(ENCODER[5:].upper(), texts, hidden_size=128)
        else:
            encoder = load_encoder(ENCODER)
        model, groups = build_experiment(task_file, encoder=encoder)
        print({g.name: len(g.splits["train"]) for g in groups})
        """),
        code("""
        config = TrainerConfig(max_steps=MAX_STEPS, batch_size=BATCH_SIZE, encoder_lr=ENCODER_LR,
                               classifier_lr=HEAD_LR, sampler="temperature", temperature=2.0,
                               eval_every=max(1, MAX_STEPS // 3))
        history = Trainer(model, groups, config).fit()
        for task, scores in history.last_metrics().items():
            print(f"{task:12}", ", ".join(f"{m} {v:.1%}" for m, v in scores.items()))
        """),
        md("""
        Which dataset did each step use? A SNIPS step logs two losses (intent and slots), so
        we keep one of them, `intent`, to stand for the SNIPS group: the shares are then shares
        of steps. Over only a few hundred steps the mix wanders around the probabilities above.
        """),
        code("""
        one_row_per_step = [r for r in history.records if r.get("task") != "slots"]
        plot_sampler_mix(one_row_per_step, window=30)
        """),
        md("""
        The second run learns the weights (uncertainty weighting); the trainer logs each
        task's current weight with its loss, so we can watch them move. Each task starts at
        $\\tfrac12 e^{0} = 0.5$.
        """),
        code("""
        # the encoder above has been trained: start again from the same initial weights
        if ENCODER.startswith("tiny-"):
            encoder = tiny_encoder(ENCODER[5:].upper(), texts, hidden_size=128)
        else:
            encoder = load_encoder(ENCODER)
        model, groups = build_experiment(task_file, encoder=encoder)
        uncertainty = Trainer(model, groups, config, weighting="uncertainty").fit()

        fig, ax = plt.subplots(figsize=(8, 3.5))
        for task in uncertainty.tasks:
            rows = uncertainty.train_rows(task)
            ax.plot([r["step"] for r in rows], [r["weight"] for r in rows], label=task)
        ax.set(xlabel="step", ylabel=r"weight $\\frac{1}{2}e^{-s_t}$",
               title="Uncertainty weighting: learned task weights")
        ax.legend()
        ax.grid(alpha=0.3)
        plt.show()
        for task, scores in uncertainty.last_metrics().items():
            print(f"{task:12}", ", ".join(f"{m} {v:.1%}" for m, v in scores.items()))
        """),
        code("plot_losses(uncertainty)"),
        md("""
        ## Summary

        - The sampler picks the input group of each batch: proportional, uniform,
          round robin, temperature ($p_i \\propto n_i^{1/T}$) or annealed.
        - The weighting combines the losses of a batch: static, equal, uncertainty
          ($\\tfrac12 e^{-s_t}\\mathcal{L}_t + \\tfrac12 s_t$, learned) or DWA (weights from the
          loss ratios of the last two windows).
        - Both are chosen by name in `TrainerConfig`, and both are recorded: the task of each
          step and each task's weight are in the `History`.
        """),
        *exercise("""
        (a) At which temperature does MRPC get 20% of the batches, with the full dataset sizes
        (SNIPS 13,084, CoNLL 14,041, MRPC 3,668 training examples)? Find it numerically with
        `make_sampler`. (b) Check the uncertainty optimum: for a fixed loss
        $\\mathcal{L}_t = 3$, minimise $\\tfrac12 e^{-s}\\mathcal{L}_t + \\tfrac12 s$ over a
        grid of $s$ and compare the weight with $1/(2\\mathcal{L}_t)$.
        """, """
        full = [13084, 14041, 3668]
        grid = np.linspace(1, 20, 1901)
        share = [make_sampler("temperature", full, temperature=t).probabilities(0)[2] for t in grid]
        t20 = grid[int(np.argmin(np.abs(np.array(share) - 0.20)))]
        print(f"(a) T = {t20:.2f} gives MRPC "
              f"{make_sampler('temperature', full, temperature=t20).probabilities(0)[2]:.1%}")
        s = np.linspace(-3, 4, 70001)
        loss = 3.0
        best = s[np.argmin(0.5 * np.exp(-s) * loss + 0.5 * s)]
        print(f"(b) s* = {best:.4f} (log 3 = {np.log(3):.4f}); weight {0.5 * np.exp(-best):.4f} "
              f"= 1/(2*3) = {1 / 6:.4f}")
        """),
    ]


@lesson("07_hierarchical_classification")
def _hierarchical():
    return [
        header("07_hierarchical_classification", "07 · Hierarchical classification with DB_Linear", [
            "represent a label tree with `PerLevelHierarchy` (classes are prefix paths);",
            "explain why predicting a *leaf* keeps every level consistent;",
            "train DB_Linear (encoder + dropout + one linear layer over leaves, weighted NLL);",
            "compare it with the TF-IDF + SGD baseline on per-level accuracy and hierarchical F1;",
            "turn leaf probabilities into probabilities of coarser classes.",
        ], intro="""
        Many label sets are trees: TREC questions are first `LOC`, `HUM`, `NUM`... and then
        `LOC:city`, `HUM:ind`, `NUM:date`. This lesson trains the seed's *DB_Linear* model on
        TREC and scores it level by level.
        """),
        parameters("""
        import os

        FAST = os.environ.get("MTL_LIB_FAST") == "1"
        ENCODER = "tiny-bert" if FAST else "minilm"
        MAX_EXAMPLES = 1500 if FAST else None  # TREC training questions (None: all ~4,900)
        EPOCHS = 3 if FAST else 2
        ENCODER_LR = 1e-3 if FAST else 1e-4
        HEAD_LR = 3e-3 if FAST else 2e-3  # 50 leaves from scratch: the head moves fast
        """),
        setup_cell("""
        import random

        import matplotlib.pyplot as plt
        import numpy as np
        import torch

        from mtl_lib import (DB_Linear, PerLevelHierarchy, TfidfSGDBaseline, confusion_matrix,
                             data_root, hierarchical_metrics, load_encoder, load_task_file,
                             per_level_report, tiny_encoder)
        from mtl_lib.data import read_trec
        from mtl_lib.models.losses import class_weights
        from mtl_lib.ui.plots import plot_confusion_matrix, plot_per_class
        """),
        md("""
        ## 1. A label tree

        Each TREC question has a two-level path, (coarse, fine). The file has no dev split, so
        we hold out a seeded 10%.
        """),
        code("""
        records = read_trec(data_root() / "trec" / "train_5500.label")
        print(records[0])
        random.Random(0).shuffle(records)
        n_dev = len(records) // 10
        dev, train = records[:n_dev], records[n_dev:][:MAX_EXAMPLES]
        print(f"{len(train)} train, {len(dev)} dev questions")
        """),
        md("""
        A class at level $k$ is identified by its whole prefix path, not by its name: in the
        amazon product tree the leaf name "food" occurs under "dogs" and under "cats", and
        those are two classes. `PerLevelHierarchy` numbers the classes of each level and knows
        each one's parent. It is built from **all** known paths (train and dev), so a rare
        leaf seen only in dev is still a class.
        """),
        code("""
        hierarchy = PerLevelHierarchy.from_paths([r["path"] for r in records])
        print(hierarchy)
        print("coarse classes:", hierarchy.levels[0])
        for coarse in ["LOC", "NUM"]:
            print(coarse, "->", [leaf[1] for leaf in hierarchy.leaves if leaf[0] == coarse])
        """),
        md(r"""
        ## 2. Predict a leaf, read off the path

        DB_Linear scores every **leaf** with one linear layer on the pooled encoder vector,
        $s = W\,\mathrm{dropout}(\text{pooled}) + b \in \mathbb{R}^{n_\text{leaves}}$, and
        predicts $\hat j = \arg\max_j s_j$. The prediction at every level is read from the
        path of leaf $\hat j$, so the levels can never contradict each other (separate heads
        per level could say `LOC` and `HUM:ind` at once).

        Training uses the class-weighted NLL of lesson 02 over leaves,
        $\mathcal{L} = \sum_n w_{y_n}(-\log p_{n,y_n}) / \sum_n w_{y_n}$ with
        $p = \mathrm{softmax}(s)$. TREC is very unbalanced: inverse-frequency weights
        $w_c = N / (C n_c)$ are inversely proportional to the class counts, so a question of a
        leaf seen once would weigh hundreds of times more than one of the most common leaf.
        (DB_Linear's default is uniform weights: `class_weighting: "inverse_frequency"` turns
        them on.)
        """),
        code("""
        leaf_ids = [hierarchy.leaf_index(r["path"]) for r in train]
        w = class_weights(leaf_ids, hierarchy.n_leaves, "inverse_frequency")
        order = torch.argsort(w)
        for j in [*order[:3].tolist(), *order[-3:].tolist()]:
            print(f"{':'.join(hierarchy.leaves[j]):18} {leaf_ids.count(j):4} examples  weight {w[j]:.2f}")
        """),
        md("""
        ## 3. The baseline: TF-IDF + linear SGD

        The classical twin of DB_Linear: TF-IDF word and bigram features instead of an
        encoder, a linear classifier over the same leaves. It trains in a second and is the
        number to beat.
        """),
        code("""
        baseline = TfidfSGDBaseline(hierarchy=hierarchy).fit(train)
        baseline_scores = baseline.test(dev)
        {k: round(v, 4) for k, v in baseline_scores.items()}
        """),
        md("""
        ## 4. DB_Linear

        The configuration holds the seed's three keys (`encoder_lr`, `classifier_lr`,
        `dropout`) plus training options; unknown keys are refused. `fit` trains epoch by
        epoch and scores the dev set after each.
        """),
        code("""
        if ENCODER.startswith("tiny-"):
            encoder = tiny_encoder(ENCODER[5:].upper(), [r["text"] for r in records],
                                   hidden_size=128)
        else:
            encoder = load_encoder(ENCODER)
        config = {"encoder_lr": ENCODER_LR, "classifier_lr": HEAD_LR, "dropout": 0.1,
                  "epochs": EPOCHS, "batch_size": 32, "max_length": 64}
        db_linear = DB_Linear(hierarchy, config, encoder=encoder)
        for row in db_linear.fit(train, dev, progress=False):
            print(f"epoch {row['epoch']}: loss {row['train_loss']:.3f}  "
                  f"dev leaf accuracy {row['dev_leaf_accuracy']:.1%}  "
                  f"({row['train_time_s']:.0f} s)")
        """),
        md(r"""
        ## 5. Hierarchical metrics

        With gold paths $y$ and predicted paths $\hat y$:

        - **per-level accuracy**: level $k$ is right when the first $k$ labels all match;
        - **leaf macro-F1**: macro-F1 over full leaf paths (rare leaves count as much as
          common ones);
        - **hierarchical P / R / F1** (Kiritchenko et al., 2005): augment each path with all
          its ancestors, $Y_n = \mathrm{anc}(y_n)$, $\hat Y_n = \mathrm{anc}(\hat y_n)$, then

          $$hP = \frac{\sum_n |\hat Y_n \cap Y_n|}{\sum_n |\hat Y_n|}, \qquad
          hR = \frac{\sum_n |\hat Y_n \cap Y_n|}{\sum_n |Y_n|}, \qquad
          hF = \frac{2\, hP\, hR}{hP + hR}.$$

          A wrong leaf under the right parent earns partial credit. (With paths of equal depth
          $|\hat Y_n| = |Y_n|$, so $hP = hR = hF$.)
        """),
        code("""
        texts = [r["text"] for r in dev]
        gold = [r["path"] for r in dev]
        db_pred = db_linear.predict(texts)
        db_scores = hierarchical_metrics(gold, db_pred)
        print(f"{'metric':24} {'TF-IDF + SGD':>12} {'DB_Linear':>10}")
        for k in db_scores:
            print(f"{k:24} {baseline_scores[k]:12.1%} {db_scores[k]:10.1%}")
        """),
        code("""
        metrics = ["level1_accuracy", "level2_accuracy", "leaf_macro_f1", "hierarchical_f1"]
        x = np.arange(len(metrics))
        fig, ax = plt.subplots(figsize=(8, 3.5))
        for i, (name, scores) in enumerate([("TF-IDF + SGD", baseline_scores),
                                            (f"DB_Linear ({encoder.name})", db_scores)]):
            bars = ax.bar(x + (i - 0.5) * 0.38, [scores[m] for m in metrics], 0.38, label=name)
            ax.bar_label(bars, [f"{scores[m]:.0%}" for m in metrics], fontsize=8)
        ax.set_xticks(x, metrics)
        ax.set(ylim=(0, 1.1), ylabel="dev score", title="TREC: baseline vs DB_Linear")
        ax.legend(loc="lower right")
        plt.show()
        """),
        md("""
        Level by level and class by class (`per_level_report`), here the coarse level, and
        where the coarse errors go:
        """),
        code("""
        report = per_level_report(gold, db_pred)
        plot_per_class([r for r in report if r["level"] == 1], metric="f1")
        """),
        code("""
        coarse = hierarchy.levels[0]
        plot_confusion_matrix(confusion_matrix([g[0] for g in gold], [p[0] for p in db_pred],
                                               coarse), coarse)
        """),
        md(r"""
        ## 6. Probabilities up the tree

        A coarse class is the union of its leaves, so its probability is the sum of theirs:
        $P(a) = \sum_{j \in \text{leaves}(a)} p_j$. `leaf_to_ancestors` is the
        $(n_\text{leaves} \times \text{all classes})$ 0/1 matrix (a NumPy array) marking each
        leaf's ancestors, so one matrix product gives every level at once:
        """),
        code("""
        probs = db_linear.predict_scores(texts[:3]).softmax(-1)    # (3, n_leaves)
        leaf_to_ancestors = torch.from_numpy(hierarchy.leaf_to_ancestors)  # (n_leaves, total)
        every_level = probs @ leaf_to_ancestors                    # (3, total classes)
        start, end = hierarchy.level_offsets[0], hierarchy.level_offsets[1]
        for text, row in zip(texts[:3], every_level[:, start:end]):
            best = row.argsort(descending=True)[:2].tolist()
            print(f"{text[:55]:55}", {coarse[i]: f"{row[i]:.0%}" for i in best},
                  f"(sum {row.sum():.3f})")
        """),
        md("""
        ## 7. Inside a multi-task model

        The same head is a task type of `MultiTaskModel` (DB_Linear is a one-task
        `MultiTaskModel` with it): `task_type: hierarchical`, whose labels are leaf paths
        (tuples such as `("LOC", "city")`), trained with the weighted NLL next to other tasks
        on a shared encoder. `examples/tasks/hierarchical.yml` trains TREC and
        the 3-level amazon product tree together (`mtl-lib train examples/tasks/hierarchical.yml`):
        """),
        code("""
        for spec in load_task_file("../examples/tasks/hierarchical.yml").tasks:
            print(f"{spec.name:7} {spec.task_type} {spec.format:4} {spec.path:12} "
                  f"loss={spec.loss_type} levels={spec.level_columns or '(coarse, fine)'}")
        """),
        md("""
        ## Summary

        - Classes of a label tree are prefix paths; `PerLevelHierarchy` numbers them per level.
        - DB_Linear = encoder + dropout + one linear layer over leaves, trained with the
          class-weighted NLL; the argmax leaf's path gives consistent labels at every level.
        - Per-level accuracy, leaf macro-F1 and hierarchical F1 judge it; TF-IDF + SGD is the
          baseline to beat.
        - Summing leaf probabilities (`leaf_to_ancestors`) gives every coarser class's
          probability.
        """),
        *exercise("""
        Train the TF-IDF + SGD baseline again with `config={"class_weighting":
        "inverse_frequency"}`. Before running it, predict: which of leaf accuracy and leaf
        macro-F1 should class weights help, and which could they hurt? Then measure.
        """, """
        weighted = TfidfSGDBaseline({"class_weighting": "inverse_frequency"},
                                    hierarchy=hierarchy).fit(train).test(dev)
        for k in ["leaf_accuracy", "leaf_macro_f1"]:
            print(f"{k:14} uniform {baseline_scores[k]:.1%}   inverse frequency {weighted[k]:.1%}")
        # The expectation: weights shift effort to rare leaves, which macro-F1 rewards (each
        # leaf counts the same), at some cost on frequent leaves, which dominate accuracy.
        # The measurement: on all of TREC both go down (accuracy by 1.5 points, macro-F1 by
        # 2.4); on the fast-mode subset they barely move. The rare TREC leaves have a handful
        # of examples each, and re-weighting cannot create the missing evidence.
        # Measure before trusting the expectation.
        """),
    ]


@lesson("08_save_load_predict")
def _save_load_predict():
    return [
        header("08_save_load_predict", "08 · Save, load and predict", [
            "list what a checkpoint holds and why it contains no pickle;",
            "save and reload a model and check that its outputs are bit-identical;",
            "predict intents, tags and slot spans for raw text with `Predictor`;",
            "stop training, resume it from `last/`, and get exactly the same weights;",
            "recognise the errors a damaged or unsafe checkpoint gives.",
        ], intro="""
        A trained model is only useful if it can be stored, shared and applied to new text,
        and if a long training run can survive an interruption. This lesson does all four,
        and checks each claim instead of trusting it.
        """),
        parameters("""
        import os

        FAST = os.environ.get("MTL_LIB_FAST") == "1"
        ENCODER = "tiny-bert" if FAST else "minilm"
        DEMO_RUN = "../runs/demo"                 # `make demo`'s run, reused if present
        MAX_EXAMPLES = 1000 if FAST else 4000    # only without a checkpoint: train this much
        MAX_STEPS = 150 if FAST else 300
        RESUME_STEPS = 10                         # steps before and after the interruption
        ENCODER_LR = 1e-3 if FAST else 1e-4
        HEAD_LR = 3e-3 if FAST else 1e-3
        """),
        setup_cell("""
        import json
        import shutil
        from pathlib import Path

        import matplotlib.pyplot as plt
        import torch

        from mtl_lib import (CheckpointError, History, Predictor, Trainer, TrainerConfig,
                             build_experiment, data_root, load_encoder, load_model, save_model,
                             snips_tasks, tiny_encoder)
        from mtl_lib.data import read_jointbert
        from mtl_lib.ui.plots import plot_losses

        OUT = Path("runs/08_save_load_predict")
        shutil.rmtree(OUT, ignore_errors=True)  # start clean on every run of the notebook
        """),
        md("""
        ## 1. A trained model

        `make demo`'s run is reused when present (not in fast mode); otherwise a small model
        is trained here, with `output_dir` so that the trainer writes its checkpoints.
        """),
        code("""
        def fresh_encoder():
            if ENCODER.startswith("tiny-"):
                snips = read_jointbert(data_root() / "snips" / "train")
                return tiny_encoder(ENCODER[5:].upper(), [" ".join(r["words"]) for r in snips],
                                    hidden_size=128)
            return load_encoder(ENCODER)


        demo = Path(DEMO_RUN)
        if not FAST and (demo / "best" / "config.json").exists():
            run = demo
            history = History.from_json(demo / "history.json")
        else:
            run = OUT / "run"
            model, groups = build_experiment(snips_tasks(MAX_EXAMPLES), encoder=fresh_encoder())
            config = TrainerConfig(max_steps=MAX_STEPS, encoder_lr=ENCODER_LR, classifier_lr=HEAD_LR,
                                   eval_every=MAX_STEPS // 3, output_dir=str(run), progress=False)
            history = Trainer(model, groups, config).fit()
        print("run directory:", run)
        plot_losses(history)
        """),
        md("""
        ## 2. What a checkpoint holds

        A checkpoint is a directory of JSON and [safetensors](https://huggingface.co/docs/safetensors)
        files. Safetensors holds raw tensors and nothing else; PyTorch's usual `.pt`/`.bin`
        files are *pickles*, and unpickling a file can run any code its author put in it.
        mtl_lib writes no pickle and refuses to load one. A checkpoint is written to a
        temporary directory and renamed into place, so a crash while saving leaves the previous
        one intact.
        """),
        code("""
        best = run / "best"
        for path in sorted(best.rglob("*")):
            if path.is_file():
                print(f"{str(path.relative_to(run)):36} {path.stat().st_size / 1e6:8.3f} MB")
        config = json.loads((best / "config.json").read_text())
        print("encoder:", config["encoder"])
        print("tasks:", [(t["name"], t["task_type"], len(t["labels"])) for t in config["tasks"]])
        """),
        md("""
        `config.json` holds everything needed to rebuild the model (the encoder's name, family
        and pooling, each task with its labels); `encoder/` the encoder's architecture config
        and tokenizer files; `model.safetensors` the weights. That is all `best/` needs;
        `last/` adds what resuming needs: `optimizer.safetensors`, `trainer_state.json` and
        `history.json`.

        ## 3. Save and load: the same model, exactly

        `load_model` rebuilds the architecture from the files and loads every weight
        strictly: a missing, extra or mis-shaped tensor is an error, never a silent random
        initialisation. `save_model` writes weights and configuration only (no optimiser),
        enough to evaluate and predict.
        """),
        code("""
        model = load_model(run)  # a run directory means its best/ checkpoint
        save_model(model, OUT / "copy")
        copy = load_model(OUT / "copy")

        same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                      copy.state_dict().values()))
        batch = model.encoder.tokenizer(["play the latest u2 album", "book a table for two"],
                                        padding=True, return_tensors="pt")
        with torch.no_grad():
            out_a = model(batch["input_ids"], batch["attention_mask"])
            out_b = copy(batch["input_ids"], batch["attention_mask"])
        print("weights identical:", same,
              "| logits identical:", all(torch.equal(out_a[t], out_b[t]) for t in out_a))
        """),
        md("""
        ## 4. Predict

        `Predictor` splits each text into words, runs **one** encoder pass per batch for all
        heads, and decodes: the intent with its probability (softmax) and all class
        probabilities; one tag per word (read at each word's first token, as in training) and
        the slot spans the tags form.
        """),
        code("""
        predictor = Predictor.from_checkpoint(run)
        texts = ["play some jazz by miles davis on spotify",
                 "book a table for four at a thai restaurant in boston",
                 "what will the weather be like tomorrow in san francisco"]
        results = predictor.predict(texts)
        print("encoder passes for", len(texts), "texts and", len(predictor.tasks), "tasks:",
              predictor.encoder_calls)
        for r in results:
            spans = [(s["type"], s["text"]) for s in r["slots"]["spans"]]
            print(f'{r["intent"]["label"]:22} {r["intent"]["score"]:5.0%}  {spans}')
        """),
        code("""
        fig, axes = plt.subplots(1, len(results), figsize=(13, 3.2), sharex=True,
                                 layout="constrained")
        for ax, r in zip(axes, results):
            scores = r["intent"]["scores"]
            bars = ax.barh(list(scores), list(scores.values()), color="tab:blue")
            ax.bar_label(bars, [f"{v:.0%}" if v >= 0.01 else "" for v in scores.values()],
                         padding=2, fontsize=8)
            ax.set_title(r["text"][:32] + "...", fontsize=9)
            ax.set_xlim(0, 1.15)
            ax.invert_yaxis()
        for ax in axes[1:]:
            ax.set_yticklabels([])
        fig.supxlabel("probability of each intent")
        plt.show()
        """),
        md("""
        From the shell the same is `mtl-lib predict RUN_DIR`, one text per line on standard
        input and one JSON result per line out, and `mtl-lib evaluate RUN_DIR --split dev`.

        ## 5. Interrupt and resume, exactly

        Training `2N` steps in one go and training `N` steps, saving, and training `N` more
        in a fresh trainer should give the **same** weights: the checkpoint stores the
        optimiser's moments, the learning-rate schedule, each dataset's position and the random
        state (dropout masks), and the sampler's choice at each step depends only on the seed
        and the step. Here an interruption is simulated by a callback that stops at step `N`
        (interrupting the kernel, the notebook's stop button, does the same when the trainer has
        an `output_dir`: it finishes the step, saves `last/` and returns).
        """),
        code("""
        start_model, groups = build_experiment(snips_tasks(200), encoder=fresh_encoder())
        save_model(start_model, OUT / "start")  # all three trainers start from these weights
        config = TrainerConfig(max_steps=2 * RESUME_STEPS, batch_size=16, encoder_lr=ENCODER_LR,
                               classifier_lr=HEAD_LR, eval_every=1000, progress=False)

        straight = Trainer(load_model(OUT / "start"), groups, config)
        straight.fit()


        class StopAt:
            def on_step_end(self, trainer, record):
                if trainer.step == RESUME_STEPS:
                    trainer.should_stop = True


        first = Trainer(load_model(OUT / "start"), groups, config,
                        output_dir=str(OUT / "resume"), callbacks=[StopAt()])
        first.fit()
        print(f"stopped at step {first.step}; saved:", sorted(p.name for p in (OUT / "resume").iterdir()))
        second = Trainer(load_model(OUT / "start"), groups, config, output_dir=str(OUT / "resume"))
        second.fit(resume_from=OUT / "resume" / "last")
        print("resumed, finished at step", second.step)

        identical = all(torch.equal(a, b) for a, b in zip(straight.model.state_dict().values(),
                                                          second.model.state_dict().values()))
        print("same weights as the uninterrupted run:", identical)
        """),
        md("""
        ## 6. When a checkpoint is damaged or unsafe

        Errors name the file and what is wrong. A truncated weights file (a copy cut short by
        a full disk):
        """),
        code("""
        broken = OUT / "broken"
        shutil.copytree(OUT / "copy", broken)
        weights = broken / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        try:
            load_model(broken)
        except CheckpointError as err:
            print("CheckpointError:", err)
        """),
        md("A directory that offers a pickle instead of safetensors is refused before anything is read:"),
        code("""
        unsafe = OUT / "unsafe"
        unsafe.mkdir()
        (unsafe / "pytorch_model.bin").write_bytes(b"not read")
        try:
            load_model(unsafe)
        except CheckpointError as err:
            print("CheckpointError:", err)
        """),
        md("""
        ## Summary

        - A checkpoint is JSON + safetensors: no pickle, written atomically, loaded strictly.
        - `save_model` / `load_model` round-trip a model bit for bit.
        - `Predictor` runs all heads with one encoder pass and returns labels, probabilities,
          word tags and spans.
        - `last/` holds everything to resume: `N` + `N` resumed steps equal `2N` straight ones.
        - Damaged or pickled checkpoints raise `CheckpointError` naming the file.
        """),
        *exercise("""
        Does batching change predictions? Predict the three texts above one at a time and
        compare labels and intent probabilities with the batched results (padding is
        masked, so they should agree up to floating-point rounding).
        """, """
        for text, batched in zip(texts, results):
            alone = predictor.predict(text)
            same_tags = alone["slots"]["tags"] == batched["slots"]["tags"]
            gap = max(abs(alone["intent"]["scores"][k] - batched["intent"]["scores"][k])
                      for k in alone["intent"]["scores"])
            print(f"{text[:40]:40} same label {alone['intent']['label'] == batched['intent']['label']}"
                  f"  same tags {same_tags}  largest probability gap {gap:.1e}")
        """),
    ]


# @@LESSONS@@


def build() -> dict[str, nbformat.NotebookNode]:
    out = {}
    for name, fn in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = dict(KERNELSPEC)
        nb.metadata["language_info"] = {"name": "python"}
        nb.cells = fn()
        for i, cell in enumerate(nb.cells):  # stable ids: rebuilding gives identical files
            cell["id"] = f"{name[:2]}-{i:02d}"
        nbformat.validate(nb)
        out[name] = nb
    return out


def main(argv: list[str]) -> int:
    stale = []
    for name, nb in build().items():
        path = HERE / f"{name}.ipynb"
        text = nbformat.writes(nb) + "\n"
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print("out of date (run notebooks/_build.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
