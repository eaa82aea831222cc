"""Text encoder files hosted on their own: ComfyUI's CLIPLoader and DualCLIPLoader.

Files in ``models/text_encoders`` (or ``models/clip``) hold one CLIP text model as
transformers names it (``text_model.*``, ``clip_l.safetensors``/``clip_g.safetensors`` as
published), or under an LDM checkpoint's prefix. Which CLIP a file is (SD 1's CLIP-L, SD
2's OpenCLIP-H, SDXL's L and G) is read off its width; its shape details and tokenizer come
from the local config folder of the architecture, ``models/configs/<arch>/text_encoder``
(``text_encoder_2`` for SDXL's G) and ``tokenizer``/``tokenizer_2``: nothing can be
fetched from the Hub here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.models.manifest import ModelManifest
from nodes.backends.checkpoint import CheckpointError, read_state_dict
from nodes.backends.device import placement
from nodes.backends.parts import PartCalls, Parts
from nodes.backends.quiet import quiet_loading

# Prefixes a CLIP carries inside LDM checkpoints (SD 1's, SDXL's L)
_PREFIXES = ("cond_stage_model.transformer.", "conditioner.embedders.0.transformer.")
_TOKENS = "embeddings.token_embedding.weight"
# The slots of a pipeline a CLIP goes to, in the order DualCLIPLoader fills them
SLOTS = {"sd1": ("text_encoder",), "sd2": ("text_encoder",),
         "sdxl": ("text_encoder", "text_encoder_2")}


def clip_weights(path: Path) -> dict[str, Any]:
    """A CLIP file's tensors under CLIPTextModel's own names (no ``text_model.`` level,
    as transformers 5.6+ writes them; no position_ids buffer or logit scale)."""
    state = read_state_dict(Path(path))
    for prefix in _PREFIXES:
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    state = {k.removeprefix("text_model."): v for k, v in state.items()
             if not k.endswith(("position_ids", "logit_scale"))}
    if _TOKENS not in state:
        raise CheckpointError(f"{Path(path).name}: no '{_TOKENS}', so not a CLIP text "
                              "encoder in transformers' layout")
    return state


def clip_width(path: Path) -> int:
    """The hidden width of a CLIP file (768 CLIP-L, 1024 OpenCLIP-H, 1280 CLIP-G...)."""
    return int(clip_weights(path)[_TOKENS].shape[1])


def config_width(config_dir: Path, slot: str) -> int | None:
    """The hidden width the architecture's config wants in ``slot``, None without one."""
    config = config_dir / slot / "config.json"
    return int(json.loads(config.read_text())["hidden_size"]) if config.is_file() else None


def load_clip(path: Path, config_dir: Path, slot: str) -> Any:
    """The text model of one file, shaped by ``config_dir/<slot>/config.json``; G (SDXL's
    ``text_encoder_2``) keeps its projection, which gives the pooled output."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config_file = config_dir / slot / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{Path(path).name}: needs the text encoder config of its "
                              f"architecture at {config_file}")
    config = CLIPTextConfig.from_pretrained(str(config_file.parent))
    with quiet_loading():
        model = (CLIPTextModelWithProjection if slot == "text_encoder_2"
                 else CLIPTextModel)(config)
    state = clip_weights(path)
    wanted = model.state_dict()
    state = {key: state.get(key, state.get(key.removeprefix("text_model."))) for key in wanted}
    missing = [key for key, value in state.items() if value is None]
    if missing:
        raise CheckpointError(f"{Path(path).name}: {len(missing)} weights missing for "
                              f"{config_file.parent} (e.g. {missing[0]}): another CLIP")
    for key, tensor in wanted.items():
        if state[key].shape != tensor.shape:
            raise CheckpointError(f"{Path(path).name}: {key} is {tuple(state[key].shape)}, "
                                  f"{config_file.parent} wants {tuple(tensor.shape)}")
    model.load_state_dict(state)
    return model.eval()


class ClipBackend(PartCalls):
    """Text encoders' host: CLIPTextEncode(SDXL) call ``encode_text(_sdxl)`` (with LoRAs).
    The manifest's path is the first file; ``options["files"]`` lists them all in slot
    order, ``options["arch"]``/``["config"]`` say how to build them."""

    def __init__(self, manifest: ModelManifest, weights: Path, device: str) -> None:
        from transformers import CLIPTokenizer

        device, dtype = placement(device)
        arch = str(manifest.options.get("arch") or "sd1")
        config_dir = Path(manifest.options["config"])
        files = [Path(f) for f in manifest.options.get("files") or [weights]]
        parts = Parts()
        for slot, path in zip(SLOTS[arch], files, strict=True):
            setattr(parts, slot, load_clip(path, config_dir, slot).to(device, dtype))
            tokenizer = "tokenizer" + slot.removeprefix("text_encoder")
            if not (config_dir / tokenizer).is_dir():
                raise CheckpointError(f"the {arch} text encoders need their tokenizer at "
                                      f"{config_dir / tokenizer}")
            setattr(parts, tokenizer, CLIPTokenizer.from_pretrained(str(config_dir / tokenizer)))
        self.base = parts
        self.device = device
        self.memory_bytes = sum(p.numel() * p.element_size()
                                for model in (parts.text_encoder, parts.text_encoder_2)
                                if model is not None for p in model.parameters())
