"""LoRA files merged into a resident pipeline's weights, and taken out again.

A LoRA holds, for some Linear/Conv layers, a low-rank pair (``up`` out×r, ``down`` r×in)
and optionally ``alpha``; the layer's weight becomes W + strength·(alpha/r)·up·down.
ComfyUI patches weights this way (its LoraLoader gives the UNet and the text encoders
separate strengths), and so do we: the host keeps each patched weight's original and
swaps patch sets between calls, so graphs with different LoRAs (or none) share one
resident pipeline and never see each other's patches. peft, which diffusers' own LoRA
loading needs, is not installed here, and merging needs nothing of it.

Files are read in the layouts they are published in:

- kohya (sd-scripts, most of Civitai): ``lora_unet_<module>``, ``lora_te_<module>`` (SD 1.x),
  ``lora_te1_``/``lora_te2_`` (SDXL's two text encoders) with ``.lora_down.weight``,
  ``.lora_up.weight`` and ``.alpha``; module paths with ``_`` for ``.``, in diffusers' or
  (SDXL) LDM's UNet naming.
- diffusers/peft: ``unet.<module>``, ``text_encoder.<module>``, ``text_encoder_2.<module>``
  with ``.lora_A.weight``/``.lora_B.weight`` (or ``.lora.down``/``.lora.up``), ``.alpha``
  optional.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodes.backends.checkpoint import read_state_dict
from nodes.backends.layout import ldm_names

# The end of a key: (suffix, which half of the pair it is)
_SUFFIXES = ((".lora_down.weight", "down"), (".lora_up.weight", "up"),
             (".lora_A.weight", "down"), (".lora_B.weight", "up"),
             (".lora.down.weight", "down"), (".lora.up.weight", "up"), (".alpha", "alpha"))
# A key's start -> the model part it patches (longest prefixes first)
_ROOTS = (("lora_unet_", "unet"), ("lora_te1_", "text_encoder"),
          ("lora_te2_", "text_encoder_2"), ("lora_te_", "text_encoder"),
          ("unet.", "unet"), ("text_encoder_2.", "text_encoder_2"),
          ("text_encoder.", "text_encoder"))


class LoraError(ValueError):
    """A LoRA file that does not fit the model it is applied to, and why."""


@dataclass
class Pair:
    """One layer's low-rank update."""

    up: Any = None
    down: Any = None
    alpha: float | None = None

    def delta(self, shape: Sequence[int]) -> Any:
        """(alpha/r)·up·down in the weight's shape (a conv's kernel flattened and back)."""
        rank = self.down.shape[0]
        scale = (self.alpha / rank) if self.alpha is not None else 1.0
        product = self.up.float().flatten(1) @ self.down.float().flatten(1)
        if product.numel() != _count(shape):
            raise LoraError(f"a rank-{rank} update of {tuple(product.shape)} does not fit a "
                            f"weight of shape {tuple(shape)}")
        return (product * scale).reshape(shape)


def read_pairs(path: Path) -> dict[tuple[str, str], Pair]:
    """(root, module name as written) -> its update, for every complete pair in the file."""
    pairs: dict[tuple[str, str], Pair] = {}
    for key, tensor in read_state_dict(Path(path)).items():
        found = next(((key[:-len(suffix)], half) for suffix, half in _SUFFIXES
                      if key.endswith(suffix)), None)
        if found is None:
            continue  # metadata tensors some trainers add (e.g. dora scales) are not ours
        base, half = found
        for prefix, root in _ROOTS:
            if base.startswith(prefix):
                name = base[len(prefix):].removesuffix(".processor")
                pair = pairs.setdefault((root, name), Pair())
                if half == "alpha":
                    pair.alpha = float(tensor)
                else:
                    setattr(pair, half, tensor)
                break
    complete = {key: pair for key, pair in pairs.items()
                if pair.up is not None and pair.down is not None}
    if not complete:
        raise LoraError(f"{Path(path).name}: no LoRA weights (lora_up/lora_down or "
                        "lora_A/lora_B pairs under lora_unet_, lora_te_, unet. or "
                        "text_encoder.)")
    return complete


@dataclass
class Patcher:
    """The LoRA patches on some of a pipeline's models (``roots``: "unet" or the text
    encoders), with the originals of every weight it changed."""

    roots: dict[str, Any]
    applied: tuple[tuple[str, float], ...] = ()
    _originals: dict[tuple[str, str], Any] = field(default_factory=dict)
    _index: dict[str, dict[str, str]] = field(default_factory=dict)
    _files: dict[tuple[str, float], dict[tuple[str, str], Pair]] = field(default_factory=dict)

    def use(self, loras: Iterable[Sequence[Any]]) -> None:
        """Make the weights carry exactly these (file, strength) patches, in order."""
        wanted = tuple((str(path), float(strength)) for path, strength in loras
                       if float(strength) != 0.0)
        if wanted == self.applied:
            return
        self.restore()
        try:
            for path, strength in wanted:
                self._apply(Path(path), strength)
        except BaseException:
            self.restore()  # never leave half a set applied
            raise
        self.applied = wanted

    def restore(self) -> None:
        import torch

        with torch.no_grad():
            for (root, name), original in self._originals.items():
                self._parameter(root, name).copy_(original)
        self._originals.clear()
        self.applied = ()

    def _apply(self, path: Path, strength: float) -> None:
        import torch

        pairs = self._read(path)
        targets = []
        for (root, written), pair in pairs.items():
            if root not in self.roots:
                continue  # a CLIP's patcher skips the UNet's pairs, and the other way round
            name = self._resolve(root, written)
            if name is None:
                raise LoraError(f"{path.name}: '{written}' names no layer of the {root} it "
                                "is applied to (a LoRA for another model family?)")
            targets.append((root, name, pair))
        with torch.no_grad():
            for root, name, pair in targets:
                weight = self._parameter(root, f"{name}.weight")
                self._originals.setdefault((root, f"{name}.weight"), weight.detach().clone())
                patched = weight.float() + strength * pair.delta(weight.shape).to(weight.device)
                weight.copy_(patched.to(weight.dtype))

    def _read(self, path: Path) -> dict[tuple[str, str], Pair]:
        key = (str(path), path.stat().st_mtime)
        if key not in self._files:
            if len(self._files) >= 8:  # the files a session switches between, not more
                self._files.pop(next(iter(self._files)))
            self._files[key] = read_pairs(path)
        return self._files[key]

    def _resolve(self, root: str, written: str) -> str | None:
        """The module a written name means: dotted as is, with transformers' older
        ``text_model.`` level, or with ``_`` for ``.`` (kohya), in diffusers' or LDM's
        UNet naming."""
        index = self._index.get(root)
        if index is None:
            index = self._index[root] = _module_index(root, self.roots[root])
        return index.get(written) or index.get(written.replace(".", "_"))

    def _parameter(self, root: str, name: str) -> Any:
        return self.roots[root].get_parameter(name)


def _module_index(root: str, model: Any) -> dict[str, str]:
    """Every way a LoRA file may write one of the model's weighted modules -> its name."""
    weighted = [name.removesuffix(".weight") for name, _ in model.named_parameters()
                if name.endswith(".weight")]
    index: dict[str, str] = {}
    for name in weighted:
        for written in (name, f"text_model.{name}", name.removeprefix("text_model.")):
            index.setdefault(written, name)
            index.setdefault(written.replace(".", "_"), name)
    if root == "unet" and hasattr(model, "config"):
        ldm = ldm_names((f"{n}.weight" for n in weighted), model.config, strict=False)
        for name, written in ldm.items():
            module = name.removesuffix(".weight")
            written = written.removesuffix(".weight")
            index.setdefault(written, module)
            index.setdefault(written.replace(".", "_"), module)
    return index


def _count(shape: Sequence[int]) -> int:
    total = 1
    for size in shape:
        total *= int(size)
    return total
