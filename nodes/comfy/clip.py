"""ComfyUI's text encoder loaders: CLIP files from models/text_encoders, hosted on their own.

A CLIP from these loaders encodes exactly as a checkpoint's does (the same PartCalls on
its host), so UNETLoader + CLIPLoader + VAELoader compose what CheckpointLoaderSimple
gives. Only the text encoders of the families HomePilot runs are offered: SD 1.x/2.x's
CLIP (``stable_diffusion``) and SDXL's pair; ComfyUI's other types (T5 for SD3 and Flux,
the video families' encoders) have no model here to condition, and are refused at
validation with this list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.sdk import Input, ModelNotFoundError, Node, NodeContext, NodeOutputs, Output, node
from engine.settings import get_settings
from nodes.comfy.folder import ModelFolder, refused_name
from nodes.comfy.loader import ClipPart, config_for
from nodes.comfy.value import Component

TEXT_ENCODERS = ModelFolder("text_encoders", "clip", "nodes.backends.clip:ClipBackend",
                            gpu=0.1, aliases=("clip",))
DEVICES = ["default", "cpu"]


def text_encoder(name: str, field: str = "clip_name") -> Path:
    path = TEXT_ENCODERS.file(name)
    if path is None:
        raise ModelNotFoundError(f"{field}: {name!r} not in {TEXT_ENCODERS.files()}")
    return path


def _width_arch(path: Path, archs: tuple[str, ...]) -> str:
    """The architecture among ``archs`` whose configured CLIP is as wide as the file's."""
    from nodes.backends.clip import clip_width, config_width

    width = clip_width(path)
    configs = get_settings().models_dir / "configs"
    for arch in archs:
        if config_width(configs / arch, "text_encoder") == width:
            return arch
    raise ModelNotFoundError(
        f"{path.name}: a {width}-wide CLIP, and no config folder for it among "
        f"{', '.join(str(configs / a) for a in archs)} (text_encoder/config.json of that "
        "width): add the diffusers-format configs of its architecture")


def hosted_clip(files: list[Path], arch: str, device: str) -> str:
    """The store id of these CLIP files hosted together as one CLIP (registered once)."""
    config = config_for(arch, "text_encoder/config.json", files[0])
    variant = "-".join([*(f.stem for f in files[1:]), *(["cpu"] if device == "cpu" else [])])
    return TEXT_ENCODERS.register(files[0], options={
        "arch": arch, "config": str(config), "files": [str(f) for f in files]},
        variant=variant, gpu=0.0 if device == "cpu" else None)


def _clip(ctx: NodeContext, model: str) -> Component:
    ctx.model(TEXT_ENCODERS.kind, model)  # the host loads it now: a bad file fails here
    return Component(model=model, kind=TEXT_ENCODERS.kind, part="clip")


@node("CLIPLoader", category="advanced/loaders", display_name="Load CLIP")
class CLIPLoader(Node):
    """A text encoder file: SD 1.x's CLIP-L or SD 2.x's OpenCLIP-H (told apart by width)."""

    clip_name: str = Input(options_from=TEXT_ENCODERS.source)
    type: str = Input("stable_diffusion", choices=["stable_diffusion"])
    device: str = Input("default", choices=DEVICES, optional=True)

    class Outputs(NodeOutputs):
        CLIP: ClipPart = Output()

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return refused_name(inputs, "clip_name", text_encoder)

    def run(self, ctx: NodeContext) -> Outputs:
        path = text_encoder(self.clip_name)
        arch = _width_arch(path, ("sd1", "sd2"))
        return self.Outputs(CLIP=_clip(ctx, hosted_clip([path], arch, self.device or "")))


@node("DualCLIPLoader", category="advanced/loaders", display_name="DualCLIPLoader")
class DualCLIPLoader(Node):
    """SDXL's two text encoders, CLIP-L and CLIP-G, in either order, as one CLIP."""

    clip_name1: str = Input(options_from=TEXT_ENCODERS.source)
    clip_name2: str = Input(options_from=TEXT_ENCODERS.source)
    type: str = Input("sdxl", choices=["sdxl"])
    device: str = Input("default", choices=DEVICES, optional=True)

    class Outputs(NodeOutputs):
        CLIP: ClipPart = Output()

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return [*refused_name(inputs, "clip_name1", lambda n: text_encoder(n, "clip_name1")),
                *refused_name(inputs, "clip_name2", lambda n: text_encoder(n, "clip_name2"))]

    def run(self, ctx: NodeContext) -> Outputs:
        from nodes.backends.clip import clip_width, config_width

        files = [text_encoder(self.clip_name1, "clip_name1"),
                 text_encoder(self.clip_name2, "clip_name2")]
        config = config_for("sdxl", "text_encoder_2/config.json", files[0])
        widths = [config_width(config, "text_encoder"), config_width(config, "text_encoder_2")]
        found = [clip_width(f) for f in files]
        if sorted(found) != sorted(w or 0 for w in widths) or widths[0] == widths[1]:
            raise ValueError(f"SDXL needs CLIP-L ({widths[0]} wide) and CLIP-G ({widths[1]} "
                             f"wide); {files[0].name} is {found[0]} and {files[1].name} is "
                             f"{found[1]} wide")
        if found[0] != widths[0]:  # given G first: L goes to the first slot
            files.reverse()
        return self.Outputs(CLIP=_clip(ctx, hosted_clip(files, "sdxl", self.device or "")))
