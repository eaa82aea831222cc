"""ControlNets: what a CONTROL_NET and a conditioning's ``control`` are, and how the MODEL's
host runs them beside its UNet.

A ControlNet is a copy of the UNet's encoder that also reads a hint picture (edges, depth,
a pose...) and returns one residual per skip connection plus one for the middle block;
the UNet adds them, scaled by the strength. Nothing is loaded where the nodes run: a
``control`` entry is plain data (which file, the hint as a small tensor, strength,
window, the control it chains to), and the host that samples loads each ControlNet file
once, on its own device and dtype, and calls it with the same input, timestep and text
embeddings its UNet gets (``ControlNets.residuals``, called by the sampler's ``_x0``).

Only pixel-space ControlNets of UNet models (SD 1.x/2.x, SDXL) run here, in ControlNet's
own (cldm) layout or diffusers'. Latent-space ones (SD3, Flux: DiT blocks that read a
VAE-encoded hint) are refused when loaded, since no such model runs here.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from nodes.backends.ksampler import Conditioning, Model

# How ComfyUI resizes the hint to the picture being drawn (latent size × 8).
HINT_RATIO = 8
HINT_RESIZE = "nearest-exact"
LOADED_MAX = 4  # ControlNets a host keeps loaded, least recently used dropped first
# Keys only latent-space (DiT) ControlNets have: SD3's and Flux's in diffusers' layout,
# XLabs' and InstantX's Flux ones.
_LATENT_SPACE = ("controlnet_blocks.", "controlnet_x_embedder.", "pos_embed_input.",
                 "double_blocks.", "controlnet_single_blocks.")


class ControlNetError(ValueError):
    """A ControlNet file that cannot be used, and why."""


class ControlNetFile(BaseModel):
    """A CONTROL_NET value: which weights file, with which diffusers config."""

    model_config = ConfigDict(frozen=True)

    name: str  # as the loader's combo lists it
    path: str  # the weights file
    config: str  # the folder holding its diffusers config.json
    arch: str  # sd1, sd2 or sdxl, read from the keys

    def __repr__(self) -> str:
        return f"<controlnet {self.name}>"


class Control(BaseModel):
    """A conditioning entry's ``control``: one ControlNet with its hint, strength and
    window, chained to the control the entry had before (their residuals add up).

    Entries whose controls share a ``key`` share one control (ComfyUI's one object): the
    host runs it once for all of their rows."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    key: str = Field(default_factory=lambda: uuid.uuid4().hex)
    net: ControlNetFile
    hint: Any  # B×C×H×W float32 in 0..1, CPU
    strength: float
    # The active window as fractions of the training timesteps (ComfyUI's percents):
    # 0 is the noisiest end, 1 the clean one; the host turns them into σ.
    start_percent: float = 0.0
    end_percent: float = 1.0
    previous: Control | None = None

    def chain(self) -> list[Control]:
        """This control and the ones it chains to, newest first."""
        links: list[Control] = []
        link: Control | None = self
        while link is not None:
            links.append(link)
            link = link.previous
        return links


# -- files ---------------------------------------------------------------------------------


def _shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape by name; a .safetensors header is read without its tensors."""
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as opened:
            return {key: tuple(opened.get_slice(key).get_shape()) for key in opened.keys()}
    from nodes.backends.checkpoint import CheckpointError, read_state_dict
    try:
        return {key: tuple(value.shape) for key, value in read_state_dict(path).items()
                if hasattr(value, "shape")}
    except CheckpointError as error:
        raise ControlNetError(str(error)) from error


def controlnet_arch(path: Path) -> str:
    """sd1, sd2 or sdxl for a pixel-space ControlNet file (cldm or diffusers layout), read
    from its keys; ControlNetError for a latent-space one or anything else."""
    path = Path(path)
    shapes = _shapes(path)
    names = list(shapes)
    if any(marker in name for name in names for marker in _LATENT_SPACE):
        raise ControlNetError(
            f"{path.name} is a latent-space ControlNet (SD3/Flux DiT blocks): only the "
            "pixel-space ControlNets of SD 1.x/2.x and SDXL UNets run here")
    if any("lora_controlnet" in name for name in names):
        raise ControlNetError(f"{path.name} is a Control-LoRA, which is not supported")
    cldm = any("input_hint_block." in name for name in names) \
        and any("zero_convs." in name for name in names)
    if not cldm and "controlnet_cond_embedding.conv_in.weight" not in shapes:
        raise ControlNetError(
            f"{path.name} is not a ControlNet (no hint encoder: neither input_hint_block.* "
            "nor controlnet_cond_embedding.*); a T2I-Adapter or a LoRA?")
    # SDXL's UNet (so its ControlNets) embeds the pooled text and size ids: label_emb in
    # the cldm layout, add_embedding in diffusers'.
    if any(marker in f".{name}" for name in names for marker in (".label_emb.",
                                                                  ".add_embedding.")):
        return "sdxl"
    context = next((shape[1] for name, shape in shapes.items()
                    if name.endswith("attn2.to_k.weight")), None)
    return "sd2" if context == 1024 else "sd1"


def load_controlnet(path: Path, config: Path, dtype: Any = None) -> Any:
    """diffusers' ControlNetModel from one file, configured by ``config/config.json``
    (local only: nothing is fetched). A file that does not fit the config is refused."""
    from diffusers import ControlNetModel

    from nodes.backends.quiet import quiet_loading

    extra = {"torch_dtype": dtype} if dtype is not None else {}
    try:
        with quiet_loading():
            net = ControlNetModel.from_single_file(str(path), config=str(config),
                                                   local_files_only=True, **extra)
    except (ValueError, RuntimeError, OSError) as error:
        raise ControlNetError(f"{path.name} does not load with {config / 'config.json'} "
                              f"(a config of another architecture or variant?): {error}") \
            from error
    # from_single_file leaves parameters the file lacks on the meta device, silently.
    missing = [name for name, value in net.named_parameters() if value.is_meta]
    if missing:
        raise ControlNetError(f"{path.name} lacks {len(missing)} weights that "
                              f"{config / 'config.json'} asks for ({missing[0]}, ...): "
                              "a config of another architecture or variant?")
    return net.eval()


# -- conditioning --------------------------------------------------------------------------


def uncond_controls(positive: list[list[Any]],
                    negative: list[list[Any]]) -> list[list[Any]]:
    """The negative entries with the positive's controls copied onto them, as ComfyUI's
    sampler does for controls set with ``control_apply_to_uncond`` (ControlNetApply):
    only when no negative entry has a control of its own; the n-th such control goes to
    the (n mod count)-th negative entry without one, a later one replacing an earlier."""
    if not negative or any((extra or {}).get("control") is not None for _, extra in negative):
        return negative
    controls = [extra["control"] for _, extra in positive if extra
                and extra.get("control_apply_to_uncond") and extra.get("control") is not None]
    if not controls:
        return negative
    filled = [[embeds, dict(extra or {})] for embeds, extra in negative]
    for index, control in enumerate(controls):
        filled[index % len(filled)][1]["control"] = control
    return filled


# -- on the host ---------------------------------------------------------------------------


def _sigma_at(model: Model, percent: float) -> float:
    """ComfyUI's percent_to_sigma: 0 → ∞, 1 → 0, else σ at timestep (1 − p)·999."""
    if percent <= 0.0:
        return float("inf")
    if percent >= 1.0:
        return 0.0
    return float(model.sigmas.sigma((1.0 - percent) * 999.0))


class ControlNets:
    """One model host's ControlNets, each file loaded once on the host's device and dtype
    (and again if the file changes); the least recently used goes past LOADED_MAX."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[Any, ...], Any] = {}

    @classmethod
    def of(cls, host: Any) -> ControlNets:
        """The host's ControlNets, made on first use."""
        return host.__dict__.setdefault("_controlnets", cls())

    def net(self, file: ControlNetFile, device: str, dtype: Any) -> Any:
        path = Path(file.path)
        if not path.is_file():
            raise ControlNetError(f"ControlNet {file.name}: {path} no longer exists")
        stat = path.stat()
        key = (file.path, file.config, stat.st_mtime_ns, stat.st_size, device, dtype)
        net = self._loaded.pop(key, None)
        if net is None:
            net = load_controlnet(path, Path(file.config), dtype).to(device)
            while len(self._loaded) >= LOADED_MAX:
                self._loaded.pop(next(iter(self._loaded)))
        self._loaded[key] = net  # (re)inserted last: the most recently used
        return net

    def residuals(self, model: Model, entries: list[Conditioning], sample: Any,
                  timestep: Any, embeds: Any, sigma: Any,
                  added: dict[str, Any]) -> dict[str, Any]:
        """The UNet's extra arguments for one call whose batch is the entries' rows one
        after another (``sample`` is its input, before any inpainting channels): the
        summed residuals of each entry's active controls, zeros for rows without any.
        Nothing when no control is active at σ, so the UNet call stays as it was."""
        import torch

        groups: dict[str, tuple[Control, list[int]]] = {}
        for index, entry in enumerate(entries):
            control = entry.extra.get("control")
            if control is not None:
                groups.setdefault(control.key, (control, []))[1].append(index)
        if not groups:
            return {}
        rows = sample.shape[0] // len(entries)
        down: list[Any] | None = None
        mid: Any = None
        for control, members in groups.values():
            picked = torch.cat([torch.arange(i * rows, (i + 1) * rows) for i in members])
            found = self._chain(model, control, len(members), picked, sample, timestep,
                                embeds, sigma, added)
            if found is None:
                continue
            if down is None:
                down = [part.new_zeros((sample.shape[0], *part.shape[1:])) for part in found[0]]
                mid = found[1].new_zeros((sample.shape[0], *found[1].shape[1:]))
            at = picked.to(found[1].device)
            for total, part in zip(down, found[0], strict=True):
                total[at] = part
            mid[at] = found[1]
        if down is None:
            return {}
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}

    def _chain(self, model: Model, control: Control, copies: int, picked: Any, sample: Any,
               timestep: Any, embeds: Any, sigma: Any,
               added: dict[str, Any]) -> tuple[list[Any], Any] | None:
        """The summed (down, mid) residuals of a control and those it chains to, for the
        rows ``picked`` (``copies`` entries' rows); None when none is active at σ."""
        import torch

        dtype = model.dtype or torch.float32
        total: tuple[list[Any], Any] | None = None
        for link in control.chain():
            # Active while σ(end) ≤ σ ≤ σ(start), compared as ComfyUI compares them.
            if bool(sigma > _sigma_at(model, link.start_percent)) \
                    or bool(sigma < _sigma_at(model, link.end_percent)):
                continue
            net = self.net(link.net, model.device, dtype)
            context = embeds[picked]
            if context.shape[-1] != net.config.cross_attention_dim:
                raise ControlNetError(
                    f"ControlNet {link.net.name} ({link.net.arch}) reads text embeddings of "
                    f"{net.config.cross_attention_dim} values and this model's have "
                    f"{context.shape[-1]}: it was made for another model family")
            extra = {}
            if "added_cond_kwargs" in added:  # SDXL: pooled text and size ids
                extra["added_cond_kwargs"] = {
                    name: value[picked.to(value.device)]
                    for name, value in added["added_cond_kwargs"].items()}
            with torch.no_grad():
                down, mid = net(
                    sample[picked].to(model.device, dtype), timestep[picked].to(model.device),
                    encoder_hidden_states=context.to(model.device, dtype),
                    controlnet_cond=self._hint(link, net, sample, len(picked) // copies,
                                               copies, model.device, dtype),
                    conditioning_scale=link.strength, return_dict=False, **extra)
            if total is None:
                total = (list(down), mid)
            else:
                total = ([a + b for a, b in zip(total[0], down, strict=True)], total[1] + mid)
        return total

    @staticmethod
    def _hint(control: Control, net: Any, sample: Any, rows: int, copies: int, device: str,
              dtype: Any) -> Any:
        """The hint at the picture's size (latent × 8, nearest-exact after a centre
        crop), its batch tiled (or cut) to ``rows``, once per entry sharing the control."""
        import math

        from nodes.comfy.resample import upscale

        hint = control.hint.float()
        if hint.shape[1] != net.config.conditioning_channels:
            raise ControlNetError(
                f"ControlNet {control.net.name} reads hints of "
                f"{net.config.conditioning_channels} channels, and this image has "
                f"{hint.shape[1]}")
        height, width = sample.shape[-2] * HINT_RATIO, sample.shape[-1] * HINT_RATIO
        if tuple(hint.shape[-2:]) != (height, width):
            hint = upscale(hint, width, height, HINT_RESIZE, "center")
        hint = hint.repeat(math.ceil(rows / hint.shape[0]), 1, 1, 1)[:rows]
        return hint.repeat(copies, 1, 1, 1).to(device, dtype)
