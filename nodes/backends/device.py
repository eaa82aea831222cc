"""Where a diffusers model runs, and in what precision."""

from __future__ import annotations

import os
from typing import Any


def placement(device: str) -> tuple[str, Any]:
    """(device, dtype): fp16 on CUDA, fp32 on CPU. A logical GPU from Ray without CUDA in
    this torch build means CPU. Hub lookups are off: weights are local or nothing."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        device = "cpu"
    return device, torch.float16 if device == "cuda" else torch.float32
