"""Text out of uploaded documents (PDF per page, Word, Excel per sheet, plain text) and a
caption plus an EXIF-free copy for pictures. Plain functions: the ingest graph's nodes and
the benchmark's direct baseline call the same ones."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

DOCUMENTS = (".pdf", ".txt", ".md", ".docx", ".xlsx")
IMAGES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
# A few named colours: a caption says "dark blue", not "#1f2a6b".
_COLOURS = {"black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128),
            "red": (200, 30, 30), "orange": (240, 140, 20), "yellow": (240, 220, 40),
            "green": (40, 160, 60), "blue": (40, 80, 200), "purple": (130, 50, 160),
            "pink": (240, 150, 190), "brown": (120, 75, 35), "dark blue": (20, 30, 90),
            "dark green": (20, 70, 30), "light blue": (150, 200, 240), "beige": (225, 210, 170)}


class ExtractError(ValueError):
    """The file cannot be read as the kind its name says."""


@dataclass
class Section:
    """A run of text with the place a citation names: a PDF page, an Excel sheet."""

    text: str
    page: int | None = None
    label: str = ""


@dataclass
class Extracted:
    sections: list[Section]
    source_type: str  # "document" or "image"
    # The bytes to keep (pictures: re-encoded without EXIF); None keeps the upload as is.
    clean: bytes | None = None
    pages: int = 0
    extra: dict[str, str] = field(default_factory=dict)


def extract(data: bytes, name: str) -> Extracted:
    """Sections of text from a file, by the suffix of ``name``."""
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    try:
        if suffix == ".pdf":
            return _pdf(data)
        if suffix == ".docx":
            return Extracted([Section(_docx(data))], "document", pages=1)
        if suffix == ".xlsx":
            return _xlsx(data)
        if suffix in (".txt", ".md"):
            return Extracted([Section(data.decode("utf-8", errors="replace"))], "document",
                             pages=1)
        if suffix in IMAGES:
            return _image(data, name, suffix)
    except ExtractError:
        raise
    except Exception as exc:  # each library has its own errors for a damaged file
        raise ExtractError(f"{name} cannot be read as {suffix[1:].upper()}: {exc}") from exc
    raise ExtractError(f"{name}: unsupported kind; send one of {', '.join(DOCUMENTS + IMAGES)}")


def _pdf(data: bytes) -> Extracted:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    sections = [Section(page.extract_text() or "", number, f"page {number}")
                for number, page in enumerate(reader.pages, start=1)]
    return Extracted(sections, "document", pages=len(sections))


def _docx(data: bytes) -> str:
    from docx import Document
    from docx.table import Table

    lines: list[str] = []
    # In document order: paragraphs and tables as they come.
    for block in Document(io.BytesIO(data)).iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                lines.append(" | ".join(cell.text.strip() for cell in row.cells))
        elif block.text.strip():
            lines.append(block.text)
    return "\n".join(lines)


def _xlsx(data: bytes) -> Extracted:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    sections = []
    for number, sheet in enumerate(book.worksheets, start=1):
        rows = (" | ".join("" if v is None else str(v) for v in row)
                for row in sheet.iter_rows(values_only=True))
        text = "\n".join(r for r in rows if r.strip(" |"))
        sections.append(Section(f"Sheet {sheet.title}:\n{text}", number, f"sheet {sheet.title}"))
    book.close()
    return Extracted(sections, "document", pages=len(sections))


def _image(data: bytes, name: str, suffix: str) -> Extracted:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        kind = opened.format or suffix[1:].upper()
        upright = ImageOps.exif_transpose(opened)
    mode = upright.mode if upright.mode in ("RGB", "RGBA", "L", "LA") else "RGBA"
    pixels = upright.convert(mode)
    # A fresh image from the pixels alone: EXIF (GPS, camera, owner) and every other
    # metadata block stay behind.
    clean_image = Image.frombytes(mode, pixels.size, pixels.tobytes())
    out = io.BytesIO()
    save_as = {"JPG": "JPEG"}.get(kind, kind)
    if save_as == "JPEG" and mode not in ("RGB", "L"):
        clean_image = clean_image.convert("RGB")
    clean_image.save(out, format=save_as)
    width, height = pixels.size
    caption = (f"Image {name}: a {width}x{height} {kind} picture of {len(data) / 1024:.0f} KB; "
               f"dominant colours: {', '.join(dominant_colours(pixels))}.")
    return Extracted([Section(caption)], "image", clean=out.getvalue(), pages=1)


def dominant_colours(picture: object, count: int = 3) -> list[str]:
    """The names of the picture's most common colours, most common first."""
    small = picture.convert("RGB").resize((32, 32))  # type: ignore[attr-defined]
    tally: dict[str, int] = {}
    for r, g, b in small.getdata():
        nearest = min(_COLOURS, key=lambda n: sum((x - y) ** 2 for x, y in
                                                  zip((r, g, b), _COLOURS[n], strict=True)))
        tally[nearest] = tally.get(nearest, 0) + 1
    return [n for n, _ in sorted(tally.items(), key=lambda kv: -kv[1])[:count]]


def split(text: str, offsets: list[tuple[int, int]], size: int, overlap: int) -> list[str]:
    """``text`` cut into windows of ``size`` tokens, each starting ``size - overlap``
    tokens after the previous one (``offsets``: the tokens' character spans)."""
    if not offsets:
        return [text.strip()] if text.strip() else []
    step = max(size - overlap, 1)
    pieces = []
    for start in range(0, len(offsets), step):
        window = offsets[start:start + size]
        pieces.append(text[window[0][0]:window[-1][1]].strip())
        if start + size >= len(offsets):
            break
    return [p for p in pieces if p]
