"""Image nodes built on Pillow: load, save, resize, crop, composite, convert.

IMAGE values are ``PIL.Image.Image`` objects and MASK values are mode "L" images (255 =
fully covered). No node changes an image it receives; each returns a new one, because
cached outputs are shared between runs and branches.
"""

from __future__ import annotations

import io
import re
from typing import Any

from PIL import Image as PILImage
from PIL import ImageColor, ImageOps

from engine.sdk import (
    ALWAYS,
    PICTURE_NAMES,
    FetchError,
    Image,
    Input,
    Mask,
    Node,
    NodeContext,
    NodeOutputs,
    ReadRefusedError,
    decode_errors,
    fetch_url,
    node,
    open_picture,
    readable_path,
)

MAX_SIDE = 8192
# Ids of the file store (``f_`` and 20 hex digits, an optional suffix) rather than paths.
_FILE_ID = re.compile(r"f_[0-9a-f]{20}(\.[a-z0-9]{1,8})?")
_RESAMPLE = {"lanczos": PILImage.Resampling.LANCZOS, "bilinear": PILImage.Resampling.BILINEAR,
             "nearest": PILImage.Resampling.NEAREST}
_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


def _has_alpha(image: PILImage.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info)


def _normalise(image: PILImage.Image) -> PILImage.Image:
    """RGB, RGBA or L: the modes every image node handles (palette, CMYK, 16-bit...)."""
    if image.mode in ("RGB", "RGBA", "L"):
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Pillow clips these to 8 bits rather than scaling: a 16-bit picture would come
        # out white. 16-bit values scale by 1/257; wider ones by their own range.
        import numpy as np

        values = np.asarray(image, dtype=np.float64)
        high = float(values.max()) if values.size else 0.0
        if high > 65535:
            values = values * (255.0 / high)
        elif high > 255 or image.mode.startswith("I;16"):
            values = values / 257.0
        return PILImage.fromarray(values.clip(0, 255).round().astype(np.uint8), "L")
    return image.convert("RGBA" if _has_alpha(image) else "RGB")


def _flatten(image: PILImage.Image, background: tuple[int, int, int] = (255, 255, 255)
             ) -> PILImage.Image:
    """An RGB copy with transparency laid over a plain background (for JPEG)."""
    if not _has_alpha(image):
        return image.convert("RGB") if image.mode not in ("RGB", "L") else image
    rgba = image.convert("RGBA")
    flat = PILImage.new("RGB", rgba.size, background)
    flat.paste(rgba, (0, 0), rgba.getchannel("A"))
    return flat


def _color(text: str) -> tuple[int, ...]:
    try:
        return ImageColor.getrgb(text)
    except ValueError as exc:
        raise ValueError(f"color {text!r} is not a color; write it as #rrggbb (or #rrggbbaa, "
                         "or a name such as 'red')") from exc


@node("image.Load", category="image", display_name="Load Image")
class Load(Node):
    """Read an image from the file store or from a file in the input folder.

    The path is a file-store id (``f_...``) or a file in the input folder, the models
    folder or a folder of ``HOMEPILOT_READ_DIRS``; nothing else on the server's disk,
    symlinks included. The editor lists the pictures of the input folder and can upload
    one there.

    EXIF orientation is applied, and unusual modes (palette, CMYK, 16-bit) become RGB or
    RGBA, so downstream nodes see the picture the way a viewer shows it.
    """

    path: str = Input(options_from="input_images",
                      description="a file id (f_...), or a file in the input folder, the "
                                  "models folder or HOMEPILOT_READ_DIRS (relative paths are "
                                  "taken from the input folder)")

    class Outputs(NodeOutputs):
        image: Image
        width: int
        height: int

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any]) -> Any:
        # A file on disk may change between runs; store files never do.
        path = inputs.get("path")
        if isinstance(path, str) and not _FILE_ID.fullmatch(path):
            try:
                stat = readable_path(path).stat()
            except (OSError, ReadRefusedError):
                return None
            return (stat.st_mtime_ns, stat.st_size)
        return None

    def run(self, ctx: NodeContext) -> Outputs:
        if _FILE_ID.fullmatch(self.path):
            data = ctx.files.read(self.path)
        else:
            try:  # only inside the folders nodes may read: graphs come from requests
                path = readable_path(self.path)
            except ReadRefusedError as exc:
                raise ValueError(f"image file {exc}") from exc
            if not path.is_file():
                raise ValueError(f"image file {self.path!r} does not exist")
            data = path.read_bytes()
        image = _decode(data, repr(self.path))
        return self.Outputs(image=image, width=image.width, height=image.height)


@node("image.LoadUrl", category="image", display_name="Load Image from URL")
class LoadUrl(Node):
    """Fetch an image from an http(s) URL.

    Private and loopback addresses are refused unless ``HOMEPILOT_FETCH_ALLOW`` lists
    them; the upload size cap applies.
    """

    url: str = Input(description="http(s) URL of a picture")

    class Outputs(Load.Outputs):
        pass

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any]) -> Any:
        return ALWAYS  # what a URL serves may change between runs

    def run(self, ctx: NodeContext) -> Outputs:
        try:
            data = fetch_url(self.url)
        except FetchError as exc:
            raise ValueError(str(exc)) from exc
        image = _decode(data, self.url[:120])
        return self.Outputs(image=image, width=image.width, height=image.height)


def _decode(data: bytes, what: str) -> PILImage.Image:
    """The picture in ``data`` as a viewer shows it (EXIF orientation applied); only the
    formats every decoder of the server accepts (``engine.pictures.FORMATS``)."""
    try:
        with open_picture(data) as opened:
            image = ImageOps.exif_transpose(opened)
    except decode_errors() as exc:
        raise ValueError(f"{what} is not an image Pillow can read (it reads {PICTURE_NAMES}): "
                         f"{exc}") from exc
    return _normalise(image)


@node("image.Save", category="image", display_name="Save Image", output_node=True)
class Save(Node):
    """Store an image in the file store as PNG, JPEG or WEBP and show it.

    JPEG has no transparency: transparent parts are laid over white.
    """

    image: Image = Input(description="the picture to store")
    format: str = Input("PNG", choices=list(_SUFFIX), description="the file format")
    quality: int = Input(90, min=1, max=100, description="JPEG and WEBP quality")

    class Outputs(NodeOutputs):
        file_id: str

    def run(self, ctx: NodeContext) -> Outputs:
        image = _flatten(self.image) if self.format == "JPEG" else _normalise(self.image)
        options = {} if self.format == "PNG" else {"quality": self.quality}
        buffer = io.BytesIO()
        image.save(buffer, format=self.format, **options)
        file_id = ctx.files.save(buffer.getvalue(), _SUFFIX[self.format])
        shown = {"filename": file_id, "subfolder": "", "type": "output"}
        return self.Outputs(file_id=file_id).show(images=[shown])


@node("image.Resize", category="image/transform", display_name="Resize Image")
class Resize(Node):
    """Resize to width × height, stretched, fitted inside or filled and cropped.

    stretch: exactly that size, aspect ratio ignored; fit: as large as fits inside the
    box, aspect kept (one side may be smaller); fill: exactly that size, aspect kept,
    the overflow cropped evenly from both sides.
    """

    image: Image = Input(description="the picture to resize")
    width: int = Input(512, min=1, max=MAX_SIDE, description="target width in pixels")
    height: int = Input(512, min=1, max=MAX_SIDE, description="target height in pixels")
    mode: str = Input("stretch", choices=["stretch", "fit", "fill"],
                      description="stretch: exact size; fit: inside the box; fill: crop over")
    resample: str = Input("lanczos", choices=list(_RESAMPLE), description="the filter")

    class Outputs(NodeOutputs):
        image: Image

    def run(self, ctx: NodeContext) -> Outputs:
        size, method = (self.width, self.height), _RESAMPLE[self.resample]
        if self.mode == "fit":
            resized = ImageOps.contain(self.image, size, method=method)
        elif self.mode == "fill":
            resized = ImageOps.fit(self.image, size, method=method)
        else:
            resized = self.image.resize(size, method)
        return self.Outputs(image=resized)


@node("image.Scale", category="image/transform", display_name="Scale Image")
class Scale(Node):
    """Resize by a factor (0.5 halves each side), keeping the aspect ratio."""

    image: Image = Input(description="the picture to scale")
    factor: float = Input(0.5, min=0.01, max=16.0, step=0.01, description="1 keeps the size")
    resample: str = Input("lanczos", choices=list(_RESAMPLE), description="the filter")

    class Outputs(NodeOutputs):
        image: Image

    def run(self, ctx: NodeContext) -> Outputs:
        width = max(1, round(self.image.width * self.factor))
        height = max(1, round(self.image.height * self.factor))
        if max(width, height) > MAX_SIDE:
            raise ValueError(f"scaling {self.image.width}x{self.image.height} by "
                             f"{self.factor:g} gives {width}x{height}; the limit is {MAX_SIDE} "
                             "per side")
        return self.Outputs(image=self.image.resize((width, height), _RESAMPLE[self.resample]))


@node("image.Crop", category="image/transform", display_name="Crop Image")
class Crop(Node):
    """Cut out the width × height region whose top-left corner is (x, y)."""

    image: Image = Input(description="the picture to crop")
    x: int = Input(0, min=0, max=MAX_SIDE, description="left edge of the region")
    y: int = Input(0, min=0, max=MAX_SIDE, description="top edge of the region")
    width: int = Input(512, min=1, max=MAX_SIDE, description="width of the region")
    height: int = Input(512, min=1, max=MAX_SIDE, description="height of the region")

    class Outputs(NodeOutputs):
        image: Image

    def run(self, ctx: NodeContext) -> Outputs:
        right, bottom = self.x + self.width, self.y + self.height
        if right > self.image.width or bottom > self.image.height:
            raise ValueError(f"crop box x={self.x} y={self.y} width={self.width} "
                             f"height={self.height} goes outside the {self.image.width}x"
                             f"{self.image.height} image")
        return self.Outputs(image=self.image.crop((self.x, self.y, right, bottom)))


@node("image.Composite", category="image/composite", display_name="Composite Images")
class Composite(Node):
    """Lay ``overlay`` on ``base`` with its top-left corner at (x, y).

    Without a mask the overlay's own transparency is used; a mask (same size as the
    overlay) says how much of each overlay pixel covers the base. Parts outside the base
    are cut off; the result has the base's size and mode.
    """

    base: Image = Input(description="the picture underneath")
    overlay: Image = Input(description="the picture laid on top")
    x: int = Input(0, min=-MAX_SIDE, max=MAX_SIDE, description="overlay's left edge on base")
    y: int = Input(0, min=-MAX_SIDE, max=MAX_SIDE, description="overlay's top edge on base")
    mask: Mask = Input(optional=True, description="255 = overlay, 0 = base")

    class Outputs(NodeOutputs):
        image: Image

    def run(self, ctx: NodeContext) -> Outputs:
        result, overlay, mask = self.base.copy(), self.overlay, self.mask
        if mask is not None:
            if mask.size != overlay.size:
                raise ValueError(f"mask is {mask.width}x{mask.height} but overlay is "
                                 f"{overlay.width}x{overlay.height}; they must match")
            mask = mask if mask.mode == "L" else mask.convert("L")
        elif _has_alpha(overlay):
            if result.mode == "RGBA":
                _alpha_composite(result, overlay.convert("RGBA"), self.x, self.y)
                return self.Outputs(image=result)
            overlay = overlay.convert("RGBA")
            mask = overlay.getchannel("A")
        if overlay.mode != result.mode:
            overlay = overlay.convert(result.mode)
        result.paste(overlay, (self.x, self.y), mask)
        return self.Outputs(image=result)


def _alpha_composite(base: PILImage.Image, overlay: PILImage.Image, x: int, y: int) -> None:
    """Porter-Duff "over" in place; Pillow refuses negative offsets, so crop those away."""
    left, top = max(0, -x), max(0, -y)
    if left >= overlay.width or top >= overlay.height:
        return
    base.alpha_composite(overlay, dest=(max(0, x), max(0, y)), source=(left, top))


@node("image.Convert", category="image/transform", display_name="Convert Colour Mode")
class Convert(Node):
    """Change the colour mode: RGB, RGBA (adds an opaque alpha) or L (greyscale)."""

    image: Image = Input(description="the picture to convert")
    mode: str = Input("RGB", choices=["RGB", "RGBA", "L"], description="L is greyscale")

    class Outputs(NodeOutputs):
        image: Image

    def run(self, ctx: NodeContext) -> Outputs:
        image = self.image
        return self.Outputs(image=image if image.mode == self.mode else image.convert(self.mode))


@node("image.ToMask", category="image/composite", display_name="Image to Mask")
class ToMask(Node):
    """Turn one channel of an image into a MASK (e.g. its alpha, for ``image.Composite``).

    An image without alpha gives a fully covering mask for channel 'alpha'.
    """

    image: Image = Input(description="the picture to take a channel from")
    channel: str = Input("alpha", choices=["alpha", "red", "green", "blue", "luminance"],
                         description="the channel that becomes the mask")

    class Outputs(NodeOutputs):
        mask: Mask

    def run(self, ctx: NodeContext) -> Outputs:
        image = self.image
        if self.channel == "luminance":
            return self.Outputs(mask=image.convert("L"))
        if self.channel == "alpha":
            if not _has_alpha(image):
                return self.Outputs(mask=PILImage.new("L", image.size, 255))
            return self.Outputs(mask=image.convert("RGBA").getchannel("A"))
        band = {"red": "R", "green": "G", "blue": "B"}[self.channel]
        return self.Outputs(mask=image.convert("RGB").getchannel(band))


@node("image.Solid", category="image", display_name="Solid Colour")
class Solid(Node):
    """A plain image of one colour: a canvas to composite on, or a test picture.

    ``#rrggbbaa`` (or any colour with alpha) gives an RGBA image, otherwise RGB.
    """

    width: int = Input(512, min=1, max=MAX_SIDE, description="width in pixels")
    height: int = Input(512, min=1, max=MAX_SIDE, description="height in pixels")
    color: str = Input("#000000", description="#rrggbb, #rrggbbaa or a colour name")

    class Outputs(NodeOutputs):
        image: Image

    @classmethod
    def check(cls, inputs: dict[str, Any]) -> list[tuple[str | None, str]]:
        color = inputs.get("color")
        if isinstance(color, str):
            try:
                _color(color)
            except ValueError as exc:
                return [("color", str(exc))]
        return []

    def run(self, ctx: NodeContext) -> Outputs:
        rgb = _color(self.color)
        mode = "RGBA" if len(rgb) == 4 else "RGB"
        return self.Outputs(image=PILImage.new(mode, (self.width, self.height), rgb))


@node("image.Info", category="image", display_name="Image Info")
class Info(Node):
    """An image's size and colour mode."""

    image: Image = Input(description="the picture to describe")

    class Outputs(NodeOutputs):
        width: int
        height: int
        mode: str

    def run(self, ctx: NodeContext) -> Outputs:
        return self.Outputs(width=self.image.width, height=self.image.height,
                            mode=self.image.mode)
