"""ComfyUI's picture files: LoadImage, LoadImageMask, SaveImage, PreviewImage and
SaveAnimatedWEBP, with ComfyUI's folders, names and ``ui`` entries.

Folders (the same ones ``folder_paths`` gives ComfyUI packs, and the ones the editor's
``/view`` serves): the input folder is ``$HOMEPILOT_HOME/input``; "output" is the file
store's folder (``$HOMEPILOT_HOME/files``, where our own nodes' ids live too, so
``type=output`` finds both); "temp" is its sibling ``$HOMEPILOT_HOME/temp``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from engine.files import write_atomic
from engine.sdk import (
    PICTURE_NAMES,
    Input,
    Node,
    NodeContext,
    NodeOutputs,
    decode_errors,
    node,
    open_picture,
)
from engine.settings import get_settings
from nodes.comfy.value import ImageTensor, MaskTensor, pictures_of

# ComfyUI's annotation suffixes of a LoadImage name, and the folder each selects.
_ANNOTATIONS = {" [input]": "input", " [output]": "output", " [temp]": "temp"}
# ComfyUI's alphabet for PreviewImage's random prefix (its "p" twice and no "w" included).
_TEMP_LETTERS = "abcdefghijklmnopqrstupvxyz"
_WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}


def folder(kind: str, ctx: NodeContext | None = None) -> Path:
    """The input, output or temp folder. With a context, output is the store the run
    writes to (a test's own store, the server's store in a server run)."""
    if kind == "input":
        return get_settings().input_dir
    store = ctx.files.root if ctx is not None else get_settings().home / "files"
    return store if kind == "output" else store.parent / "temp"


# -- loading ------------------------------------------------------------------------------

def annotated_path(name: str) -> Path:
    """The file a LoadImage name means: relative to the input folder, or to the output or
    temp folder with a `` [output]`` / `` [temp]`` suffix. Names leading outside their
    folder are refused: the combo is open, so a graph could name any path."""
    kind = "input"
    for suffix, annotated in _ANNOTATIONS.items():
        if name.endswith(suffix):
            name, kind = name[: -len(suffix)], annotated
            break
    base = folder(kind).resolve()
    path = (base / name).resolve()
    if not name or not path.is_relative_to(base) or path == base:
        raise ValueError(f"Invalid image file: {name!r} is not a file in the {kind} folder")
    return path


def _file_sha256(inputs: dict[str, Any]) -> Any:
    """IS_CHANGED of the loaders: the file's SHA-256, so a file replaced under the same
    name loads again. None (no extra key) when it cannot be read: the run reports that."""
    name = inputs.get("image")
    if not isinstance(name, str):
        return None
    try:
        return hashlib.sha256(annotated_path(name).read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None


def _file_exists(inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
    name = inputs.get("image")
    if not isinstance(name, str):
        return []
    try:
        exists = annotated_path(name).is_file()
    except ValueError:
        exists = False
    return [] if exists else [("image", f"Invalid image file: {name}")]


def _open(name: str) -> Any:
    path = annotated_path(name)
    if not path.is_file():
        raise ValueError(f"Invalid image file: {name}")
    try:
        return open_picture(path.read_bytes())
    except decode_errors() as exc:
        raise ValueError(f"{name!r} is not a picture this server reads ({PICTURE_NAMES}): "
                         f"{exc}") from exc


def _scaled_int(frame: Any) -> Any:
    """Mode I pictures (32-bit integers) are scaled by 1/255 before 8-bit conversion."""
    return frame.point(lambda value: value * (1 / 255)) if frame.mode == "I" else frame


@node("LoadImage", category="image", display_name="Load Image")
class LoadImage(Node):
    """Load a picture from the input folder as an IMAGE and a MASK.

    The mask is 1 − alpha, or all zeros at 64×64 (not the picture's size) when the picture
    has no transparency. Frames of an animated picture that share the first frame's size
    become one batch. EXIF orientation is applied.
    """

    image: str = Input(options_from="input_images",
                       description="a picture in the input folder (suffix ' [output]' or "
                                   "' [temp]' for those folders)")

    class Outputs(NodeOutputs):
        IMAGE: ImageTensor
        MASK: MaskTensor

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any]) -> Any:
        return _file_sha256(inputs)

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return _file_exists(inputs)

    def run(self, ctx: NodeContext) -> Outputs:
        import numpy as np
        import torch
        from PIL import ImageOps, ImageSequence

        opened = _open(self.image)
        images, masks = [], []
        for raw in ImageSequence.Iterator(opened):
            frame = _scaled_int(ImageOps.exif_transpose(raw))
            rgb = frame.convert("RGB")
            if images and tuple(images[0].shape[1:3]) != (rgb.height, rgb.width):
                continue  # ComfyUI skips frames of another size
            images.append(torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0)[None])
            if "A" in frame.getbands():
                alpha = frame.getchannel("A")
            elif frame.mode == "P" and "transparency" in frame.info:
                alpha = frame.convert("RGBA").getchannel("A")
            else:
                alpha = None
            masks.append(torch.zeros((1, 64, 64)) if alpha is None else
                         1.0 - torch.from_numpy(np.asarray(alpha, dtype=np.float32) / 255.0)[None])
        if len(images) == 1 or opened.format == "MPO":  # MPO: the first picture only
            return self.Outputs(IMAGE=images[0], MASK=masks[0])
        if len({m.shape for m in masks}) > 1:
            # Some frames transparent, some not (ComfyUI fails to batch these): the opaque
            # frames' masks become zeros of the frame size.
            size = images[0].shape[1:3]
            masks = [m if m.shape[1:] == size else torch.zeros((1, *size)) for m in masks]
        return self.Outputs(IMAGE=torch.cat(images), MASK=torch.cat(masks))


@node("LoadImageMask", category="mask", display_name="Load Image (as Mask)")
class LoadImageMask(Node):
    """Load one channel of a picture in the input folder as a MASK (1×H×W).

    alpha gives 1 − alpha (transparent = selected); a picture without alpha counts as
    opaque, so its alpha mask is all zeros.
    """

    image: str = Input(options_from="input_images",
                       description="a picture in the input folder")
    channel: str = Input("alpha", choices=["alpha", "red", "green", "blue"],
                         description="the channel that becomes the mask")

    class Outputs(NodeOutputs):
        MASK: MaskTensor

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any]) -> Any:
        return _file_sha256(inputs)

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        return _file_exists(inputs)

    def run(self, ctx: NodeContext) -> Outputs:
        import numpy as np
        import torch
        from PIL import ImageOps

        picture = ImageOps.exif_transpose(_open(self.image))
        if picture.getbands() != ("R", "G", "B", "A"):
            picture = _scaled_int(picture).convert("RGBA")
        band = self.channel[0].upper()
        values = torch.from_numpy(np.asarray(picture.getchannel(band), dtype=np.float32) / 255.0)
        return self.Outputs(MASK=(1.0 - values if band == "A" else values)[None])


# -- saving -------------------------------------------------------------------------------

def _fill_variables(prefix: str, width: int, height: int) -> str:
    """The variables the server fills in a prefix (the frontend fills %date:...% and
    %Node.widget% before the prompt is sent)."""
    now = time.localtime()
    values = {"width": width, "height": height, "year": now.tm_year,
              "month": f"{now.tm_mon:02d}", "day": f"{now.tm_mday:02d}",
              "hour": f"{now.tm_hour:02d}", "minute": f"{now.tm_min:02d}",
              "second": f"{now.tm_sec:02d}"}
    for name, value in values.items():
        prefix = prefix.replace(f"%{name}%", str(value))
    return prefix


def next_counter(directory: Path, base: str) -> int:
    """ComfyUI's counter: one more than the largest number N of the files named
    ``<base>_N...`` in the folder (any extension), or 1. A name whose part after
    ``<base>_`` does not start with a number counts as 0."""
    highest = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 1
    wanted = os.path.normcase(base + "_")
    for name in names:
        if os.path.normcase(name[:len(base) + 1]) != wanted:
            continue
        try:
            highest = max(highest, int(name[len(base) + 1:].split("_")[0]))
        except ValueError:
            pass
    return highest + 1


def save_target(prefix: str, root: Path, width: int, height: int) -> tuple[Path, str, str]:
    """The folder, base name and subfolder a filename prefix means under ``root``; a prefix
    whose folder part leads outside ``root`` is refused."""
    if "%" in prefix:
        prefix = _fill_variables(prefix, width, height)
    normal = os.path.normpath(prefix)
    subfolder, base = os.path.dirname(normal), os.path.basename(normal)
    directory = root / subfolder
    if not directory.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"Saving image outside the output folder is not allowed: the prefix "
                         f"{prefix!r} leads to {directory}")
    return directory, base, subfolder


def _write_new(directory: Path, name_for: Any, counter: int, data: bytes) -> tuple[str, int]:
    """Write ``data`` under the first free name from ``counter`` on; returns the name and
    its counter. Branches run in parallel (and Ray workers in other processes), so a name
    is claimed with an atomic link that fails if the file exists, never overwritten."""
    directory.mkdir(parents=True, exist_ok=True)
    temp = directory / f".{name_for(counter)}.{os.getpid()}.{random.getrandbits(32):x}.tmp"
    write_atomic(temp, data)
    try:
        while True:
            name = name_for(counter)
            try:
                os.link(temp, directory / name)
                return name, counter
            except FileExistsError:
                counter += 1
            except OSError:  # a file system without hard links: reserve the name instead
                try:
                    with open(directory / name, "xb"):
                        pass
                except FileExistsError:
                    counter += 1
                    continue
                os.replace(temp, directory / name)
                return name, counter
    finally:
        temp.unlink(missing_ok=True)


def run_metadata(ctx: NodeContext) -> tuple[Any, Any]:
    """The API prompt and ``extra_pnginfo`` (the workflow) of the run: ComfyUI's hidden
    PROMPT / EXTRA_PNGINFO, given for prompts sent to ``/prompt``; None each otherwise."""
    extra = ctx.run_info.get("extra_pnginfo")
    return ctx.run_info.get("prompt"), extra if isinstance(extra, dict) else None


def png_info(prompt: Any, extra_pnginfo: Any) -> Any:
    """PNG text chunks as ComfyUI writes them: ``prompt`` as JSON, then one JSON chunk per
    key of extra_pnginfo (usually ``workflow``)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    for key, value in (extra_pnginfo or {}).items():
        info.add_text(key, json.dumps(value))
    return info


def save_pngs(ctx: NodeContext, images: Any, prefix: str, kind: str,
              compress_level: int) -> list[dict[str, str]]:
    """Each picture as ``<base>_%05d_.png`` in the output or temp folder; the ui entries."""
    pictures = pictures_of(images)
    if not pictures:
        raise ValueError("there are no pictures to save (the batch is empty)")
    directory, base, subfolder = save_target(prefix, folder(kind, ctx), pictures[0].width,
                                             pictures[0].height)
    counter = next_counter(directory, base)
    metadata = png_info(*run_metadata(ctx))
    shown = []
    for batch_number, picture in enumerate(pictures):
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG", pnginfo=metadata, compress_level=compress_level)
        named = base.replace("%batch_num%", str(batch_number))
        name, counter = _write_new(directory, lambda n, b=named: f"{b}_{n:05}_.png", counter,
                                   buffer.getvalue())
        shown.append({"filename": name, "subfolder": subfolder, "type": kind})
        counter += 1
    return shown


# The saving nodes return no values (Node's empty Outputs): what they show is their ui.
@node("SaveImage", category="image", display_name="Save Image", output_node=True)
class SaveImage(Node):
    """Save the pictures as PNG files in the output folder.

    Files are named ``<prefix>_00001_.png``, the counter continuing after the files already
    there. The prefix may hold a subfolder and %width%, %height%, %year%, %month%, %day%,
    %hour%, %minute% and %second%.
    """

    images: ImageTensor = Input(description="the pictures to save")
    filename_prefix: str = Input("ComfyUI", description="the file name's start, with an "
                                 "optional subfolder (sub/name)")

    def run(self, ctx: NodeContext) -> NodeOutputs:
        shown = save_pngs(ctx, self.images, self.filename_prefix, "output", compress_level=4)
        return self.Outputs().show(images=shown)


@node("PreviewImage", category="image", display_name="Preview Image", output_node=True)
class PreviewImage(Node):
    """Show the pictures without keeping them: they go to the temp folder."""

    images: ImageTensor = Input(description="the pictures to show")

    def run(self, ctx: NodeContext) -> NodeOutputs:
        prefix = "ComfyUI_temp_" + "".join(random.choice(_TEMP_LETTERS) for _ in range(5))
        shown = save_pngs(ctx, self.images, prefix, "temp", compress_level=1)
        return self.Outputs().show(images=shown)


def webp_exif(first: Any, prompt: Any, extra_pnginfo: Any) -> Any:
    """The EXIF ComfyUI stores its metadata in: 0x0110 ``prompt:<json>``, then 0x010F,
    0x010E, ... ``key:<json>`` per extra_pnginfo key."""
    exif = first.getexif()
    if prompt is not None:
        exif[0x0110] = f"prompt:{json.dumps(prompt)}"
    tag = 0x010F
    for key, value in (extra_pnginfo or {}).items():
        exif[tag] = f"{key}:{json.dumps(value)}"
        tag -= 1
    return exif


@node("SaveAnimatedWEBP", category="image/animation", display_name="SaveAnimatedWEBP",
      output_node=True)
class SaveAnimatedWEBP(Node):
    """Save the pictures as the frames of one animated WEBP in the output folder."""

    images: ImageTensor = Input(description="the frames, in order")
    filename_prefix: str = Input("ComfyUI", description="the file name's start, with an "
                                 "optional subfolder (sub/name)")
    fps: float = Input(6.0, min=0.01, max=1000.0, step=0.01, description="frames per second")
    lossless: bool = Input(True, description="lossless WEBP (quality then sets the effort)")
    quality: int = Input(80, min=0, max=100, description="lossy quality")
    method: str = Input("default", choices=list(_WEBP_METHODS),
                        description="encoder effort: fastest, default or slowest")

    def run(self, ctx: NodeContext) -> NodeOutputs:
        pictures = pictures_of(self.images)
        directory, base, subfolder = save_target(self.filename_prefix, folder("output", ctx),
                                                 pictures[0].width, pictures[0].height)
        buffer = io.BytesIO()
        pictures[0].save(buffer, format="WEBP", save_all=True, append_images=pictures[1:],
                         duration=int(1000.0 / self.fps),
                         exif=webp_exif(pictures[0], *run_metadata(ctx)),
                         lossless=self.lossless, quality=self.quality,
                         method=_WEBP_METHODS[self.method])
        name, _ = _write_new(directory, lambda n: f"{base}_{n:05}_.webp",
                             next_counter(directory, base), buffer.getvalue())
        shown = [{"filename": name, "subfolder": subfolder, "type": "output"}]
        return self.Outputs().show(images=shown, animated=[len(pictures) != 1])
