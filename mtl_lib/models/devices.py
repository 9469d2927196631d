"""Devices and mixed precision: which device to run on, and which autocast type to train in.

``device="auto"`` picks CUDA, then Apple's MPS, then the CPU; ``"cpu"``, ``"cuda"``,
``"cuda:1"`` or ``"mps"`` ask for one (an error says so when it is not there).

Training precision (:func:`autocast_dtype`): by default a CUDA GPU trains under bfloat16
autocast when it supports bf16 (Ampere and newer), and under float16 autocast with a gradient
scaler otherwise — float16's small range makes small gradients underflow to 0, so the loss is
scaled up before ``backward`` and the gradients scaled back before the optimiser step. The CPU
and MPS train in float32 unless asked (``bf16=True`` / ``fp16=True``).
"""

from __future__ import annotations

import torch

__all__ = ["autocast_dtype", "resolve_device"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None): CUDA, then MPS, then CPU; otherwise the device named, if present.

    Raises
    ------
    ValueError
        For a name torch does not know, or a device this machine does not have.
    """
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a device name (auto, cpu, cuda, cuda:N, mps): {err}") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {device!r}: CUDA is not available on this machine (use auto or cpu)")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {device!r}: this machine has {count} CUDA device(s), 0 to {count - 1}")
    elif dev.type == "mps" and not _mps_available():
        raise ValueError(f"device {device!r}: MPS is not available on this machine (use auto or cpu)")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r}: mtl_lib runs on cpu, cuda or mps")
    return dev


def autocast_dtype(device: torch.device, bf16: bool | None = None, fp16: bool | None = None) -> torch.dtype | None:
    """The autocast type to train in on ``device``, or None for float32.

    ``bf16=True`` or ``fp16=True`` ask for that type anywhere; ``False`` for either (without the
    other set) means float32. Both None: bf16 on a CUDA GPU that supports it, fp16 on one that
    does not, float32 on CPU and MPS. A float16 result needs a gradient scaler (the trainer
    makes one).
    """
    if bf16 and fp16:
        raise ValueError("bf16 and fp16 cannot both be on")
    if bf16 or fp16:
        return torch.bfloat16 if bf16 else torch.float16
    if device.type != "cuda" or bf16 is False:
        return None
    if _native_bf16():
        return torch.bfloat16
    return torch.float16 if fp16 is None else None


def _native_bf16() -> bool:
    """bf16 in hardware: newer torch also reports GPUs that only emulate it (slowly)."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.3 has no emulation and no such argument
        return torch.cuda.is_bf16_supported()
