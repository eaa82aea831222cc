"""ComfyUI's ControlNet nodes: ControlNetLoader, ControlNetApply and ControlNetApplyAdvanced.

``control_net_name`` is a file in ComfyUI's folder ``$HOMEPILOT_HOME/models/controlnet``.
Its diffusers config.json is read from beside the file (a diffusers ControlNet folder
dropped in as it is), else from ``models/configs/<arch>/controlnet/`` (arch sd1, sd2 or
sdxl, read from the keys): no config can be fetched from the Hub here. The loader loads
no weights; the apply nodes put plain data into the conditioning (see
``nodes.backends.controlnet``), and the KSampler's host runs the ControlNet beside its
UNet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from engine.sdk import Input, ModelNotFoundError, Node, NodeContext, NodeOutputs, Output, node
from engine.settings import get_settings
from engine.types import Port
from nodes.backends.controlnet import Control, ControlNetFile, controlnet_arch
from nodes.comfy.conditioning import Conditioning
from nodes.comfy.folder import ModelFolder, refused_name
from nodes.comfy.loader import VaePart
from nodes.comfy.value import ImageTensor, image_tensor

ControlNetPort = Annotated[Any, Port("CONTROL_NET")]

# Only the folder's listing and path checks are used: a ControlNet runs on the host of the
# MODEL it conditions, never on a host of its own, so its files are never registered.
CONTROLNETS = ModelFolder("controlnet")


def controlnet_file(name: str) -> Path:
    """The folder's file ``name`` means; ModelNotFoundError, listing the folder, if none."""
    path = CONTROLNETS.file(name)
    if path is None:
        raise ModelNotFoundError(f"control_net_name: {name!r} not in {CONTROLNETS.files()}")
    return path


def config_folder(path: Path, arch: str) -> Path:
    """Where the ControlNet's config.json is: beside the file, else the architecture's
    shared one; a clear error naming both when neither exists."""
    shared = get_settings().models_dir / "configs" / arch / "controlnet"
    for folder in (path.parent, shared):
        if (folder / "config.json").is_file():
            return folder
    raise ModelNotFoundError(
        f"{path.name} is an {arch} ControlNet, and loading one needs its diffusers "
        f"config.json at {shared / 'config.json'} (or beside the file, at "
        f"{path.parent / 'config.json'}): nothing can be fetched from the Hub here")


def _net(value: Any) -> ControlNetFile:
    if isinstance(value, ControlNetFile):
        return value
    raise ValueError(f"control_net input is invalid: {value!r} (expected the output of "
                     "ControlNetLoader)")


def _hint(image: Any) -> Any:
    """An IMAGE as ControlNet hints: B×C×H×W in 0..1 (the host resizes it)."""
    return image_tensor(image).movedim(-1, 1).float().cpu().contiguous()


def _previous(extra: dict[str, Any]) -> Control | None:
    control = extra.get("control")
    if control is not None and not isinstance(control, Control):
        raise ValueError(f"this conditioning carries a control of another kind "
                         f"({type(control).__name__}), which cannot be chained to")
    return control


@node("ControlNetLoader", category="loaders", display_name="Load ControlNet Model")
class ControlNetLoader(Node):
    """Names a ControlNet in models/controlnet for the apply nodes. It loads no weights:
    the sampler's model host loads them once, beside the model they steer."""

    control_net_name: str = Input(options_from="folder:controlnet")

    class Outputs(NodeOutputs):
        CONTROL_NET: ControlNetPort = Output()

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return refused_name(inputs, "control_net_name", controlnet_file)

    def run(self, ctx: NodeContext) -> Outputs:
        path = controlnet_file(self.control_net_name)
        arch = controlnet_arch(path)  # refuses latent-space and non-ControlNet files now
        return self.Outputs(CONTROL_NET=ControlNetFile(
            name=self.control_net_name, path=str(path), config=str(config_folder(path, arch)),
            arch=arch))


@node("ControlNetApply", category="conditioning/controlnet",
      display_name="Apply ControlNet (OLD)")
class ControlNetApply(Node):
    """Deprecated (ComfyUI keeps it for old workflows; use Apply ControlNet): steers every
    entry with the ControlNet over the whole schedule, and the negative prompt too."""

    conditioning: Conditioning = Input()
    control_net: ControlNetPort = Input()
    image: ImageTensor = Input()
    strength: float = Input(1.0, min=0.0, max=10.0, step=0.01)

    class Outputs(NodeOutputs):
        CONDITIONING: Conditioning = Output()

    def run(self, ctx: NodeContext) -> Outputs:
        if self.strength == 0:
            return self.Outputs(CONDITIONING=self.conditioning)
        net, hint = _net(self.control_net), _hint(self.image)
        # Each entry gets a control of its own, chained to the one it had.
        return self.Outputs(CONDITIONING=[
            [embeds, {**extra, "control": Control(net=net, hint=hint, strength=self.strength,
                                                  previous=_previous(extra)),
                      "control_apply_to_uncond": True}]
            for embeds, extra in self.conditioning])


@node("ControlNetApplyAdvanced", category="conditioning/controlnet",
      display_name="Apply ControlNet")
class ControlNetApplyAdvanced(Node):
    """Steers both prompts with the ControlNet and a hint image, between ``start_percent``
    and ``end_percent`` of the model's noise levels (fractions of its training timesteps,
    not of the steps). ``vae`` is for latent-space ControlNets, which do not run here."""

    positive: Conditioning = Input()
    negative: Conditioning = Input()
    control_net: ControlNetPort = Input()
    image: ImageTensor = Input()
    strength: float = Input(1.0, min=0.0, max=10.0, step=0.01)
    start_percent: float = Input(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Input(1.0, min=0.0, max=1.0, step=0.001)
    vae: VaePart = Input(optional=True)

    class Outputs(NodeOutputs):
        positive: Conditioning = Output()
        negative: Conditioning = Output()

    def run(self, ctx: NodeContext) -> Outputs:
        if self.strength == 0:
            return self.Outputs(positive=self.positive, negative=self.negative)
        net, hint = _net(self.control_net), _hint(self.image)
        # Entries that had the same control (or none) share one new control chained to it.
        made: dict[str | None, Control] = {}

        def steered(conditioning: list[list[Any]]) -> list[list[Any]]:
            out = []
            for embeds, extra in conditioning:
                previous = _previous(extra)
                key = previous.key if previous is not None else None
                if key not in made:
                    made[key] = Control(net=net, hint=hint, strength=self.strength,
                                        start_percent=self.start_percent,
                                        end_percent=self.end_percent, previous=previous)
                out.append([embeds, {**extra, "control": made[key],
                                     "control_apply_to_uncond": False}])
            return out

        return self.Outputs(positive=steered(self.positive), negative=steered(self.negative))
