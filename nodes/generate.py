"""Image generation nodes on the diffusion model hosts."""

from __future__ import annotations

from typing import Any

from engine.sdk import ALWAYS, Input, Json, Node, NodeContext, NodeOutputs, Output, node


@node("image.TextToImage", category="image", model_kind="diffusion")
class TextToImage(Node):
    """Pictures from a prompt with a Stable Diffusion-family model on its host; reports every
    denoising step. Seed -1 picks one at random; the seeds used come back."""

    prompt: str = Input(multiline=True)
    negative_prompt: str = Input("", multiline=True)
    width: int = Input(512, min=64, max=2048, step=8)
    height: int = Input(512, min=64, max=2048, step=8)
    steps: int = Input(25, min=1, max=150)
    cfg: float = Input(7.0, min=0.0, max=30.0)
    seed: int = Input(-1, min=-1, max=2**31 - 1)
    batch_size: int = Input(1, min=1, max=4)
    model: str = Input("", description="diffusion model id; empty picks the default")

    class Outputs(NodeOutputs):
        images: Any = Output(type="IMAGE", is_list=True)
        seed: int
        seeds: Json
        model: str

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any]) -> Any:
        return ALWAYS if inputs.get("seed", -1) == -1 else None

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return [(side, f"{side} must be a multiple of 8 (got {inputs[side]})")
                for side in ("width", "height")
                if isinstance(inputs.get(side), int) and inputs[side] % 8]

    def run(self, ctx: NodeContext) -> Outputs:
        handle = ctx.model("diffusion", self.model)
        final: dict[str, Any] = {}
        for batch in handle.stream("text_to_image", self.prompt, self.negative_prompt,
                                   self.width, self.height, self.steps, self.cfg, self.seed,
                                   self.batch_size):
            for update in batch:
                if "images" in update:
                    final = update
            steps = [u for u in batch if "step" in u]
            if steps:
                ctx.progress(steps[-1]["step"], steps[-1]["total"])
        return self.Outputs(images=final["images"], seed=final["seeds"][0],
                            seeds=final["seeds"], model=handle.id)
