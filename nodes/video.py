"""Video nodes: animate a still into a clip, and store a clip as MP4 and animated WebP.

``video.ImageToVideo`` runs on a video model's host (Stable Video Diffusion through
``nodes.backends.diffusers_video``) and streams its denoising steps as progress. With no
video model installed it still makes a clip: a deterministic camera move over the still
(``nodes.backends.motion``), and says so in its ``renderer`` output.

A clip travels between nodes as one FRAMES value (a Python list of PIL images), not as an
``is_list`` IMAGE output: an is_list output would make ``video.Save`` run once per frame,
while a FRAMES value reaches it whole — and when ImageToVideo itself runs once per item
of a list of stills, Save runs once per clip.
"""

from __future__ import annotations

from typing import Annotated, Any

from PIL import Image as PILImage

from engine.sdk import (
    Image,
    Input,
    ModelNotFoundError,
    Node,
    NodeContext,
    NodeOutputs,
    Output,
    Port,
    node,
)
from nodes.backends.motion import MOTIONS, iter_motion
from nodes.generate import SEED_MAX, random_seed

FRAMES = "FRAMES"
Frames = Annotated[list[Any], Port(FRAMES)]
MAX_SIDE = 2048
# A side taken from the image is capped here: SVD's own resolution is 1024×576, and a
# 4000 px photo would otherwise ask for a clip no machine here could make.
MAX_AUTO_SIDE = 1024


def clip_size(image: PILImage.Image, width: int, height: int) -> tuple[int, int]:
    """The clip's size: as given, or with 0 taken from the image's aspect ratio (both 0:
    the image's own size, the longer side at most ``MAX_AUTO_SIDE``); multiples of 8."""
    if width and height:
        return width, height
    ratio = image.width / image.height
    if width:
        height = width / ratio
    elif height:
        width = height * ratio
    else:
        scale = min(1.0, MAX_AUTO_SIDE / max(image.width, image.height))
        width, height = image.width * scale, image.height * scale
    return _eight(width), _eight(height)


def _eight(side: float) -> int:
    return min(MAX_SIDE, max(8, int(side) // 8 * 8))


def _sides_of_eight(inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(side, f"{side} must be 0 (from the image) or a multiple of 8 "
                   f"(got {inputs[side]})")
            for side in ("width", "height")
            if isinstance(inputs.get(side), int) and inputs[side] % 8]


@node("video.ImageToVideo", category="video/generate", display_name="Image to Video",
      model_kind="video")
class ImageToVideo(Node):
    """Animate a still into a short clip with an image-to-video model.

    The model (Stable Video Diffusion) runs on its host and reports every denoising step.
    Seed -1 picks one at random and reports it.

    ``motion_strength`` sets how much moves (for SVD: 1.0 is its default motion bucket
    127). Without a video model installed, a camera move (``motion``) over the still is
    rendered instead; ``renderer`` then reads ``motion:<motion>``.
    """

    image: Image = Input(description="the still to animate (the clip's first frame)")
    frames: int = Input(14, min=2, max=64, description="the clip's length in frames")
    fps: int = Input(7, min=1, max=60, description="frames per second")
    width: int = Input(0, min=0, max=MAX_SIDE, step=8,
                       description="0: from the image (aspect kept, multiple of 8)")
    height: int = Input(0, min=0, max=MAX_SIDE, step=8,
                        description="0: from the image (aspect kept, multiple of 8)")
    steps: int = Input(20, min=1, max=100, description="denoising steps")
    cfg: float = Input(2.5, min=0.0, max=20.0, step=0.1,
                       description="guidance on the last frame (SVD ramps up from 1)")
    seed: int = Input(-1, min=-1, max=SEED_MAX, description="-1: random")
    motion: str = Input("zoom_in", choices=list(MOTIONS),
                        description="camera move when no video model is installed")
    motion_strength: float = Input(1.0, min=0.0, max=3.0, step=0.05,
                                   description="how much moves; 1 is the model's default")
    model: str = Input("", options_from="models:video",
                       description="video model id; empty picks the installed default")

    class Outputs(NodeOutputs):
        frames: Frames = Output(type=FRAMES, description="the clip, as one list of images")
        seed: int = Output(description="the seed used")
        renderer: str = Output(description="the model id, or motion:<motion> without one")
        fps: int = Output(description="frames per second")

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any]) -> Any:
        return random_seed(inputs)  # seed -1: a new clip every run, never from cache

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return _sides_of_eight(inputs)

    def run(self, ctx: NodeContext) -> Outputs:
        width, height = clip_size(self.image, self.width, self.height)
        try:
            handle = ctx.model("video", self.model)
        except ModelNotFoundError:
            if self.model:  # a model asked for by name must not be silently replaced
                raise
            return self._camera_move(ctx, width, height)
        result = _stream_clip(ctx, handle, image=self.image, frames=self.frames, fps=self.fps,
                              steps=self.steps, cfg=self.cfg, seed=self.seed, width=width,
                              height=height, motion=self.motion_strength)
        return self.Outputs(frames=result["frames"], seed=result["seed"], renderer=handle.id,
                            fps=self.fps)

    def _camera_move(self, ctx: NodeContext, width: int, height: int) -> Outputs:
        ctx.log.info("no video model is installed: rendering a %s camera move instead "
                     "(see `homepilot models list`)", self.motion)
        clip = []
        for frame in iter_motion(self.image, self.frames, width, height, self.motion,
                                 self.motion_strength):
            clip.append(frame)
            ctx.progress(len(clip), self.frames)
        # The camera move uses no randomness; a drawn seed would only suggest it did.
        return self.Outputs(frames=clip, seed=max(self.seed, 0),
                            renderer=f"motion:{self.motion}", fps=self.fps)


def _stream_clip(ctx: NodeContext, handle: Any, **call: Any) -> dict[str, Any]:
    """Stream one ``image_to_video`` call from a video host; returns its final update."""
    final: dict[str, Any] = {}
    stream = handle.stream("image_to_video", **call)
    try:
        for batch in stream:
            steps = [u for u in batch if "step" in u]
            if steps:  # raises when the run is cancelled; the host then stops the pipeline
                ctx.progress(steps[-1]["step"], steps[-1]["total"])
            final = next((u for u in batch if "frames" in u), final)
    finally:
        stream.close()
    if not final:
        raise RuntimeError(f"model {handle.id} returned no frames")
    return final


@node("video.Save", category="video", display_name="Save Video", output_node=True)
class Save(Node):
    """Store a clip in the file store as an MP4 and an animated WebP, and show it.

    The MP4 is H.264 (plays everywhere); the WebP loops and shows like a picture.

    MP4 needs even sides: an odd width or height gains one line, a copy of the last.
    ``width``/``height`` are the MP4's.
    """

    frames: Frames = Input(description="the clip (video.ImageToVideo's frames)")
    fps: int = Input(7, min=1, max=60, description="frames per second")

    class Outputs(NodeOutputs):
        video: str = Output(description="file id of the MP4")
        webp: str = Output(description="file id of the animated WebP")
        frames: int
        width: int
        height: int
        fps: int

    def run(self, ctx: NodeContext) -> Outputs:
        # imageio-ffmpeg is imported here, not at start-up: only saving needs ffmpeg.
        from nodes.backends.videofile import encode_mp4, encode_webp, even_size

        clip = _need_frames(self.frames)
        video_id = ctx.files.save(encode_mp4(clip, self.fps), ".mp4")
        webp_id = ctx.files.save(encode_webp(clip, self.fps), ".webp")
        width, height = even_size(*clip[0].size)
        shown_webp = {"filename": webp_id, "subfolder": "", "type": "output"}
        shown_mp4 = {"filename": video_id, "subfolder": "", "type": "output",
                     "format": "video/mp4", "frame_rate": self.fps}
        # ComfyUI's frontend plays "images" flagged "animated"; "videos" names the MP4.
        return self.Outputs(video=video_id, webp=webp_id, frames=len(clip), width=width,
                            height=height, fps=self.fps).show(
            images=[shown_webp], animated=[True], videos=[shown_mp4])


def _need_frames(value: Any) -> list[PILImage.Image]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError("frames must be a non-empty list of images (link "
                         "video.ImageToVideo's frames)")
    for index, frame in enumerate(value):
        if not isinstance(frame, PILImage.Image):
            raise ValueError(f"frame {index} is a {type(frame).__name__}, not an image")
    return list(value)
