"""GPU training speed: bert-base-shaped encoder, seq 128, mixed precision, SDPA, with MFU.

mtl_lib's ``Trainer`` trains a ``MultiTaskModel`` whose encoder has BERT-base's shape
(``BertConfig()`` defaults: 12 layers, hidden 768, 12 heads, FFN 3072; random init, SDPA
attention) with SNIPS-shaped heads (7 intents, 72 slot tags) on synthetic inputs of exactly
128 tokens. The Trainer picks the device (``device="auto"``: CUDA, then MPS, then CPU) and the
precision itself: on CUDA bf16 autocast where the GPU supports bf16, else fp16 autocast with a
GradScaler. This script exercises those GPU branches: the ``train`` side runs the Trainer's
own choice, and on CUDA a second side, ``fp16``, forces fp16 autocast + GradScaler (so a bf16
GPU covers the fp16 branch too) and checks that its weights stay finite.

Reported: samples/s, tokens/s and model FLOPs utilisation,
``MFU = 6 * N * tokens_per_step / step_seconds / peak_flops``, with N the parameters that do
matrix multiplies (all but the embedding tables; the attention-score FLOPs, ~3% at seq 128,
are not counted, as in the usual 6N estimate). The peak comes from a small table of dense
bf16 tensor-core peaks for known GPUs, or ``--peak-tflops``.

On a machine without CUDA the script still runs a few fp32 steps (``--cpu-bf16`` for bf16
autocast on CPU), says clearly that it ran on the CPU, reports the GPU branches (bf16, fp16 +
GradScaler) as n/a, and reports no MFU: a CPU has no meaningful tensor-core peak to divide by.

    .venv/bin/python bench/gpu.py                       # on a GPU machine
    .venv/bin/python bench/gpu.py --peak-tflops 312     # unknown GPU: give its bf16 peak
    .venv/bin/python bench/gpu.py --quick               # tiny encoder, seconds
"""

from __future__ import annotations

import copy
import sys

import _common as C
import torch

NAME = "gpu"
# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets.
# Matched against torch.cuda.get_device_name() in this order; a GPU not listed (e.g. H100 NVL)
# needs --peak-tflops rather than a guess.
PEAK_BF16_TFLOPS = [
    ("H100 PCIe", 756.0), ("H100 80GB HBM3", 989.0), ("H100 SXM", 989.0), ("H200", 989.0),
    ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0), ("A10", 125.0),
    ("RTX 4090", 165.2), ("RTX 3090", 71.0),
]


PRECISIONS = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast + GradScaler"}


def peak_tflops(device_name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS:
        if key in device_name and not (key == "A10" and "A100" in device_name):
            return value
    return None


def synthetic_features(tokenizer, n: int, seq: int, n_intents: int, n_tags: int, seed: int = 0):
    """``n`` examples of exactly ``seq`` tokens: [CLS] random word pieces [SEP], random labels."""
    gen = torch.Generator().manual_seed(seed)
    special = set(tokenizer.all_special_ids)
    vocab = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
    feats = []
    for _ in range(n):
        body = vocab[torch.randint(len(vocab), (seq - 2,), generator=gen)].tolist()
        tags = torch.randint(n_tags, (seq - 2,), generator=gen).tolist()
        feats.append({"input_ids": [tokenizer.cls_token_id] + body + [tokenizer.sep_token_id],
                      "attention_mask": [1] * seq, "token_type_ids": [0] * seq,
                      "labels": {"intent": int(torch.randint(n_intents, (1,), generator=gen)),
                                 "slots": [-100] + tags + [-100]}})
    return feats


def main(argv: list[str] | None = None) -> dict:
    p = C.parser(__doc__)
    p.add_argument("--steps", type=int, default=None, help="steps per repeat (GPU 20, CPU 2)")
    p.add_argument("--batch-size", type=int, default=None, help="GPU 32, CPU 4")
    p.add_argument("--seq", type=int, default=None, help="tokens per input (default 128)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, TFLOP/s")
    p.add_argument("--cpu-bf16", action="store_true", help="bf16 autocast on CPU too")
    args = p.parse_args(argv)
    device = C.setup()
    start = C.machine_info()
    on_gpu = device.type == "cuda"
    repeats = args.repeats or (3 if on_gpu else 1 if args.quick else 2)
    steps = args.steps or (20 if on_gpu else 1 if args.quick else 2)
    bs = args.batch_size or (32 if on_gpu else 2 if args.quick else 4)
    seq = args.seq or (32 if args.quick else 128)
    warmup = 1

    from memory import _tokenizer, bert_base_encoder

    from mtl_lib import MultiTaskModel, TaskSpec
    from mtl_lib.data.sources import InputGroup
    from mtl_lib.models import devices

    tokenizer = _tokenizer(args.quick)
    enc = bert_base_encoder(tokenizer, args.quick)
    tasks = [TaskSpec(name="intent", task_type="classification", labels=[f"i{j}" for j in range(7)]),
             TaskSpec(name="slots", task_type="tagging", labels=[f"t{j}" for j in range(72)])]
    model = MultiTaskModel.from_tasks(enc, tasks)
    model16 = copy.deepcopy(model) if on_gpu else None
    n = bs * steps
    feats = synthetic_features(tokenizer, n, seq, 7, 72)
    group = InputGroup("intent+slots", tasks, splits={"train": feats})
    total = (warmup + repeats) * steps + 1
    # the Trainer's own device and precision choice ("auto"); --cpu-bf16 asks for bf16 on a CPU
    trainer, train = C.stepped_trainer(model, [group], steps, batch_size=bs, max_steps=total, bucketing=False,
                                       device="auto", **({"bf16": True} if args.cpu_bf16 and not on_gpu else {}))
    sides = {"train": train}
    if on_gpu:  # the fp16 + GradScaler branch, also on a GPU that would pick bf16
        trainer16, sides["fp16"] = C.stepped_trainer(model16, [group], steps, batch_size=bs, max_steps=total,
                                                     bucketing=False, device="auto", fp16=True)
    precision = PRECISIONS[trainer.autocast_dtype]
    attn = enc.model.config._attn_implementation
    embed = sum(p.numel() for n_, p in enc.model.named_parameters() if n_.startswith("embeddings."))
    n_params = sum(p.numel() for p in model.parameters())
    n_matmul = n_params - embed
    where = (f"GPU {torch.cuda.get_device_name(0)}" if on_gpu else
             "CPU (no CUDA device): MFU is not meaningful and is not reported")
    print(f"{NAME}: ran on {where}; {enc.name} {n_params / 1e6:.1f}M params ({n_matmul / 1e6:.1f}M "
          f"non-embedding), attention={attn}, {precision}, batch {bs} x "
          f"seq {seq}, {steps} steps x {repeats} repeats after {warmup} warm-up, "
          f"{torch.get_num_threads()} threads", flush=True)
    times = C.interleaved(sides, repeats, warmup, device)
    s = C.side(times["train"], n, steps)
    branches = {"device_auto": str(trainer.device), "precision_auto": precision}
    if on_gpu:
        s16 = C.side(times["fp16"], n, steps, loss_scale=trainer16.scaler.get_scale(),
                     weights_finite=all(bool(torch.isfinite(p).all()) for p in model16.parameters()))
        branches |= {"bf16_native": bool(devices._native_bf16()),
                     "fp16_gradscaler": f"{s16['throughput_samples_per_s']:.1f} samples/s, loss scale "
                                        f"{s16['loss_scale']:.0f}, weights finite: {s16['weights_finite']}"}
    else:
        branches |= {"bf16_native": "n/a (no CUDA device)", "fp16_gradscaler": "n/a (no CUDA device)"}
    print("GPU branches: " + "; ".join(f"{k} {v}" for k, v in branches.items()), flush=True)
    step_s = s["median_s_per_step"]
    tokens = bs * seq
    flops_per_step = 6 * n_matmul * tokens
    achieved = flops_per_step / step_s
    peak = args.peak_tflops or (peak_tflops(torch.cuda.get_device_name(0)) if on_gpu else None)
    mfu = achieved / (peak * 1e12) if (on_gpu and peak) else None
    s |= {"tokens_per_s": tokens / step_s, "achieved_tflops": achieved / 1e12}
    print(f"{s['throughput_samples_per_s']:.1f} samples/s, {s['tokens_per_s']:.0f} tokens/s, "
          f"{step_s:.3f} s/step, {achieved / 1e12:.2f} TFLOP/s achieved (6*N*tokens)")
    if not on_gpu:
        note = "ran on CPU: MFU not meaningful (no GPU peak to compare with)"
    elif peak is None:
        note = "unknown GPU: pass --peak-tflops to get the MFU"
    else:
        note = f"MFU {100 * mfu:.1f}% of {peak:.0f} TFLOP/s bf16 peak"
    settings = {"repeats": repeats, "warmup_repeats": warmup, "steps_per_repeat": steps,
                "batch_size": bs, "seq_len": seq, "device": str(device), "on_gpu": on_gpu,
                "precision": precision, "attn_implementation": attn, **branches,
                "params": n_params, "matmul_params": n_matmul, "flops_per_step": flops_per_step,
                "peak_tflops": peak, "mfu": mfu, "threads": torch.get_num_threads(),
                "ratio": "model FLOPs utilisation (None on CPU)"}
    notes = [where, "MFU = 6 * N_non-embedding * tokens per step / step time / peak bf16 FLOP/s."]
    out_sides = {"train": s} | ({"fp16": s16} if on_gpu else {})
    return C.finish(NAME, args, [C.check("MFU", mfu, None, unit="%")], out_sides, settings, notes, start,
                    line_note=f"{note}; {s['throughput_samples_per_s']:.1f} samples/s")


if __name__ == "__main__":
    main(sys.argv[1:])
