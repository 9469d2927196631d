"""Peak memory of a demo-sized training run and of a bert-base-sized training step.

Each scenario runs in its own child process (``python bench/memory.py --child NAME``), which
reports its own peak resident set size (``VmHWM`` from ``/proc/self/status``, cross-checked
with ``getrusage(RUSAGE_SELF).ru_maxrss``) and, on a GPU, ``torch.cuda.max_memory_allocated``.
The parent also reads ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` (the largest child so far).

Scenarios:

* ``baseline``: import torch, transformers and mtl_lib, load MiniLM; no training (the floor);
* ``demo``: what ``mtl-lib demo`` does, cut to ~30 steps: MiniLM-L6 + SNIPS intent + slots
  (all 13,084 training utterances encoded), ``Trainer`` batch 32, dev evaluation at the end;
* ``bert_base``: a randomly initialised encoder of BERT-base shape (``BertConfig()`` defaults:
  12 layers, hidden 768, 110M parameters, SDPA attention) with the SNIPS heads, ``Trainer``
  steps at batch 32, every input 32 tokens long (SNIPS utterances padded to 32).

The ratio line reports bert_base / demo peak RSS (no target: DESIGN §9 sets none for memory).

    nice -n 5 .venv/bin/python bench/memory.py          # ~1.5 min on 2 free cores
    .venv/bin/python bench/memory.py --quick            # tiny encoders, seconds
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import _common as C
import torch

NAME = "memory"
SCENARIOS = ("baseline", "demo", "bert_base")
MARK = "MEMORY_RESULT "
BERT_BASE_SEQ = 32


def peak_rss_mb() -> dict:
    """This process's peak RSS in MiB, from /proc (VmHWM) and getrusage (KiB on Linux)."""
    out = {"ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["vmhwm_mb"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    out["peak_rss_mb"] = out.get("vmhwm_mb", out["ru_maxrss_mb"])
    return out


def bert_base_encoder(tokenizer, quick: bool = False):
    """A random-init encoder of BERT-base shape (a tiny one with ``quick``), SDPA attention."""
    from transformers import AutoModel, BertConfig

    from mtl_lib import Encoder

    sizes = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=256) if quick else {}
    config = BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **sizes)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AutoModel.from_config(config, attn_implementation="sdpa", add_pooling_layer=False)
    return Encoder(model, tokenizer, "bert-tiny-random" if quick else "bert-base-random", "BERT")


def _tokenizer(quick: bool):
    """MiniLM's tokenizer alone (not its weights), or a tiny one."""
    from transformers import AutoTokenizer

    from mtl_lib import list_encoders, tiny_encoder

    if quick:
        return tiny_encoder("BERT", C.snips_texts(50)).tokenizer
    location = next(i.location for i in list_encoders() if i.name == "minilm")
    return AutoTokenizer.from_pretrained(location, local_files_only=True)


def child(name: str, quick: bool, demo_steps: int, bert_steps: int) -> dict:
    device = C.setup()
    from padding import pad_static

    from mtl_lib import MultiTaskModel, Trainer, TrainerConfig

    t0 = time.perf_counter()
    info: dict = {"scenario": name}
    bs = 8 if quick else 32
    if name != "bert_base":
        enc = C.encoder_and_weights(quick)[0]
    if name == "baseline":
        info["params"] = enc.num_parameters()
    elif name == "demo":
        model, groups = C.snips_features(quick, enc, splits=("train", "dev"))
        cfg = TrainerConfig(max_steps=demo_steps, batch_size=bs, encoder_lr=1e-4,
                            classifier_lr=1e-3, progress=False)
        trainer = Trainer(model, groups, cfg)
        trainer.fit()  # evaluates on dev after the last step, as the demo does
        info |= {"params": model.encoder.num_parameters(), "steps": trainer.step, "batch_size": bs,
                 "train_examples": len(groups[0].splits["train"]),
                 "dev_examples": len(groups[0].splits["dev"])}
    else:
        from mtl_lib import build_groups, snips_tasks

        tokenizer = _tokenizer(quick)  # MiniLM's vocabulary is BERT-base's (30,522 uncased)
        big = bert_base_encoder(tokenizer, quick)
        groups = build_groups(snips_tasks(120 if quick else None), tokenizer, max_length=BERT_BASE_SEQ,
                              splits=("train",))
        feats = [f for f in groups[0].splits["train"] if len(f["input_ids"]) <= BERT_BASE_SEQ]
        feats = [pad_static(f, BERT_BASE_SEQ, tokenizer.pad_token_id or 0)
                 for f in C.subset(feats, bs * bert_steps, seed=3)]
        model = MultiTaskModel.from_tasks(big, groups[0].tasks)
        cfg = TrainerConfig(max_steps=bert_steps, batch_size=bs, progress=False)
        trainer = Trainer(model, [C.train_group(groups[0], feats)], cfg)
        trainer.fit()
        info |= {"params": big.num_parameters(), "steps": trainer.step, "batch_size": bs,
                 "seq_len": BERT_BASE_SEQ, "autocast": str(trainer.autocast_dtype)}
    info["seconds"] = time.perf_counter() - t0
    info |= peak_rss_mb()
    if device.type == "cuda":
        info["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return info


def main(argv: list[str] | None = None) -> dict:
    p = C.parser(__doc__)
    p.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    p.add_argument("--demo-steps", type=int, default=None, help="demo training steps (default 30)")
    p.add_argument("--bert-steps", type=int, default=None, help="bert-base training steps (default 2)")
    args = p.parse_args(argv)
    demo_steps = args.demo_steps or (3 if args.quick else 30)
    bert_steps = args.bert_steps or (1 if args.quick else 2)
    if args.child:
        info = child(args.child, args.quick, demo_steps, bert_steps)
        print(MARK + json.dumps(info), flush=True)
        return info

    C.setup()
    start = C.machine_info()
    print(f"{NAME}: each scenario in its own process: {', '.join(SCENARIOS)} "
          f"(demo {demo_steps} steps, bert_base {bert_steps} steps)", flush=True)
    results = {}
    for name in SCENARIOS:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name,
               "--demo-steps", str(demo_steps), "--bert-steps", str(bert_steps)]
        if args.quick:
            cmd.append("--quick")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [x for x in proc.stdout.splitlines() if x.startswith(MARK)]
        if proc.returncode != 0 or not lines:
            sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
            raise SystemExit(f"memory scenario {name!r} failed (exit {proc.returncode})")
        info = json.loads(lines[-1][len(MARK):])
        info["rusage_children_max_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        results[name] = info
        print(f"  {name:10s} peak RSS {info['peak_rss_mb']:7.0f} MiB"
              + (f", CUDA max allocated {info['cuda_max_allocated_mb']:.0f} MiB"
                 if "cuda_max_allocated_mb" in info else "")
              + f" ({info['params'] / 1e6:.1f}M params, {info['seconds']:.0f}s)", flush=True)
    ratio = results["bert_base"]["peak_rss_mb"] / results["demo"]["peak_rss_mb"]
    sides = {k: v | {"repeats": 1} for k, v in results.items()}
    settings = {"repeats": 1, "demo_steps": demo_steps, "bert_base_steps": bert_steps,
                "bert_base_seq_len": BERT_BASE_SEQ, "batch_size": 8 if args.quick else 32,
                "measure": "VmHWM of each child process (MiB); CUDA max_memory_allocated on GPU",
                "ratio": "peak RSS bert_base / peak RSS demo"}
    train_extra = results["demo"]["peak_rss_mb"] - results["baseline"]["peak_rss_mb"]
    notes = [f"demo peak minus the import+load floor: {train_extra:.0f} MiB (data, activations, "
             "gradients, AdamW state).",
             "Expected from parameters alone in fp32 training (weights + grads + 2 AdamW moments "
             f"= 16 bytes/param): demo {results['demo']['params'] * 16 / 2**20:.0f} MiB, bert_base "
             f"{results['bert_base']['params'] * 16 / 2**20:.0f} MiB."]
    return C.finish(NAME, args, [C.check("bert_base/demo peak RSS", ratio, None)], sides, settings,
                    notes, start)


if __name__ == "__main__":
    main(sys.argv[1:])
