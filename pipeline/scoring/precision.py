"""Which number format the model runs in: bf16 where the hardware does it natively, else fp32.

On CUDA, bf16 (fp16 on GPUs without bf16). On a CPU with AMX or AVX512-BF16 (Sapphire Rapids and
later, Zen 4 and later), bf16 autocast ran the shipped model 2-2.5x faster than fp32 with the
same labels (bench/scoring.py measures it in every run); without those instructions bf16 is
emulated and slower, so `auto` stays at fp32 there. Dynamic int8 keeps fp32 activations, so it
never combines with bf16.
"""

from __future__ import annotations

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_native_bf16() -> bool:
    """AMX tiles or AVX512-BF16 (torch's own probes; private, so absent probes count as no)."""
    probes = (getattr(torch.cpu, "_is_amx_tile_supported", None), getattr(torch.cpu, "_is_avx512_bf16_supported", None))
    return any(probe is not None and bool(probe()) for probe in probes)


def resolve_precision(setting: str, device: torch.device, *, quantized: bool = False) -> torch.dtype | None:
    """The autocast dtype for `setting` (auto, fp32, bf16) on `device`; None runs plain fp32."""
    if setting not in PRECISIONS:
        raise ValueError(f"unknown precision {setting!r}; expected one of {', '.join(PRECISIONS)}")
    if setting == "fp32" or quantized:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and (setting == "bf16" or cpu_has_native_bf16()):
        return torch.bfloat16
    return None


def autocast(device_type: str, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast to `dtype` (resolve_precision's answer) on the device; None leaves it off (plain fp32)."""
    return torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None)
