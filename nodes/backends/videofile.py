"""Frames to video files and back: H.264 MP4 through imageio-ffmpeg's static ffmpeg,
animated WebP through Pillow, and a probe that decodes a video to count what it holds.

ffmpeg works on files, so MP4 encoding and probing go through a temporary folder that is
removed afterwards, whatever happens.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

MP4_CRF = "18"  # visually lossless for most content; clips stay small at these sizes


@dataclass(frozen=True)
class VideoInfo:
    """What a decoded video holds."""

    frames: int
    width: int
    height: int
    fps: float


def even_size(width: int, height: int) -> tuple[int, int]:
    """The size an MP4 of ``width`` × ``height`` frames has: yuv420p stores colour per 2×2
    block, so both sides must be even; an odd side gains one pixel."""
    return width + width % 2, height + height % 2


def _rgb_frames(frames: Sequence[Image.Image]) -> list[Image.Image]:
    if not frames:
        raise ValueError("a video needs at least one frame")
    size = frames[0].size
    for index, frame in enumerate(frames):
        if frame.size != size:
            raise ValueError(f"frame {index} is {frame.width}x{frame.height} but frame 0 is "
                             f"{size[0]}x{size[1]}; every frame must have the same size")
    return [f if f.mode == "RGB" else f.convert("RGB") for f in frames]


def _padded_even(frame: Image.Image) -> Image.Image:
    """Pad an odd side by repeating the last row or column: no picture is lost (cropping
    would drop a line) and the added line matches its neighbour, so no border shows."""
    width, height = even_size(*frame.size)
    if (width, height) == frame.size:
        return frame
    pixels = np.asarray(frame)
    padded = np.pad(pixels, ((0, height - frame.height), (0, width - frame.width), (0, 0)),
                    mode="edge")
    return Image.fromarray(padded)


def encode_mp4(frames: Sequence[Image.Image], fps: int) -> bytes:
    """H.264 (yuv420p, the profile every player and browser plays) at ``fps`` frames per
    second, one video frame per image. Odd widths/heights are padded to even, see
    ``even_size``."""
    if fps <= 0:
        raise ValueError(f"fps must be positive (got {fps})")
    rgb = [_padded_even(f) for f in _rgb_frames(frames)]
    with tempfile.TemporaryDirectory(prefix="homepilot-video-") as folder:
        path = Path(folder) / "video.mp4"
        writer = imageio_ffmpeg.write_frames(
            str(path), rgb[0].size, pix_fmt_in="rgb24", pix_fmt_out="yuv420p", fps=fps,
            codec="libx264", quality=None, macro_block_size=1, ffmpeg_log_level="error",
            # faststart puts the index first, so a browser starts playing before the end
            # has arrived.
            output_params=["-crf", MP4_CRF, "-movflags", "+faststart"])
        writer.send(None)  # start ffmpeg
        try:
            for frame in rgb:
                writer.send(np.ascontiguousarray(np.asarray(frame)))
        finally:
            writer.close()  # waits for ffmpeg to finish the file
        return path.read_bytes()


def frame_durations(count: int, fps: float) -> list[int]:
    """Per-frame display times in whole milliseconds (what WebP stores) whose running sum
    stays on the exact timeline: at 7 fps they alternate 143/143/142... rather than all
    being 143, which would drift by a frame every few seconds."""
    return [round((i + 1) * 1000 / fps) - round(i * 1000 / fps) for i in range(count)]


def encode_webp(frames: Sequence[Image.Image], fps: int, quality: int = 85) -> bytes:
    """An animated WebP that loops forever (``loop=0``), at ``fps`` frames per second."""
    if fps <= 0:
        raise ValueError(f"fps must be positive (got {fps})")
    rgb = _rgb_frames(frames)
    buffer = io.BytesIO()
    rgb[0].save(buffer, format="WEBP", save_all=True, append_images=rgb[1:], loop=0,
                duration=frame_durations(len(rgb), fps), quality=quality, method=4)
    return buffer.getvalue()


def probe_video(data: bytes, suffix: str = ".mp4") -> VideoInfo:
    """Decode the whole video and count its frames (container headers may only estimate
    the count); width, height and fps come from ffmpeg's stream information."""
    with tempfile.TemporaryDirectory(prefix="homepilot-video-") as folder:
        path = Path(folder) / f"probe{suffix}"
        path.write_bytes(data)
        reader = imageio_ffmpeg.read_frames(str(path))
        try:
            meta = reader.__next__()
            count = sum(1 for _ in reader)
        except (RuntimeError, StopIteration) as exc:
            raise ValueError(f"ffmpeg cannot read this video: {exc}") from exc
        finally:
            reader.close()
    width, height = meta["size"]
    return VideoInfo(frames=count, width=int(width), height=int(height),
                     fps=float(meta.get("fps") or 0.0))
