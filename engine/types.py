"""Port types: the names that flow along links, and which of them may be linked."""

from __future__ import annotations

import sys
from typing import Annotated, Any

# The built-in port types. Any other upper-case name is allowed too, so ComfyUI's
# LATENT, MODEL, CONDITIONING ... fit without a table of their own.
STRING = "STRING"
INT = "INT"
FLOAT = "FLOAT"
BOOLEAN = "BOOLEAN"
JSON = "JSON"
IMAGE = "IMAGE"
MASK = "MASK"
VIDEO = "VIDEO"
AUDIO = "AUDIO"
DOCUMENT = "DOCUMENT"
EMBEDDING = "EMBEDDING"
MESSAGES = "MESSAGES"
FILE = "FILE"
ANY = "*"

BUILTIN_TYPES = (STRING, INT, FLOAT, BOOLEAN, JSON, IMAGE, MASK, VIDEO, AUDIO, DOCUMENT,
                 EMBEDDING, MESSAGES, FILE)


class Port:
    """Marks an annotation with its port type: ``Annotated[Any, Port("IMAGE")]``."""

    __slots__ = ("type",)

    def __init__(self, port_type: str) -> None:
        self.type = port_type

    def __repr__(self) -> str:
        return f"Port({self.type!r})"


class AsPil:
    """Marks an IMAGE/MASK annotation whose node takes PIL images (see ``as_pil``)."""

    __slots__ = ()


def as_pil(value: Any, kind: str) -> Any:
    """ComfyUI's nodes hand pictures over as float tensors (IMAGE B×H×W×C, MASK B×H×W,
    values 0..1); HomePilot's nodes take PIL images. One picture crosses as a PIL image;
    a batch of several cannot reach an input that takes one."""
    torch = sys.modules.get("torch")  # no tensor can exist unless torch was imported
    if torch is None or not isinstance(value, torch.Tensor):
        return value
    from engine.pictures import mask_pictures, pictures_of

    pictures = mask_pictures(value) if kind == MASK else pictures_of(value)
    if len(pictures) != 1:
        raise ValueError(f"a batch of {len(pictures)} pictures reached an input that takes "
                         "one; split the batch first")
    return pictures[0]


# Aliases node authors annotate with; the value inside is whatever the domain uses
# (a PIL image for IMAGE, a list of dicts for MESSAGES, ...).
Image = Annotated[Any, Port(IMAGE), AsPil()]
Mask = Annotated[Any, Port(MASK), AsPil()]
Video = Annotated[Any, Port(VIDEO)]
Audio = Annotated[Any, Port(AUDIO)]
Document = Annotated[Any, Port(DOCUMENT)]
Embedding = Annotated[Any, Port(EMBEDDING)]
Messages = Annotated[list[dict[str, Any]], Port(MESSAGES)]
File = Annotated[str, Port(FILE)]
Json = Annotated[Any, Port(JSON)]
AnyValue = Annotated[Any, Port(ANY)]


def _alternatives(port_type: str) -> set[str]:
    # ComfyUI writes unions as "INT,FLOAT".
    return {part.strip() for part in port_type.split(",") if part.strip()}


def compatible(source: str, target: str) -> bool:
    """Whether an output of type ``source`` may feed an input of type ``target``."""
    if source == target or ANY in (source, target):
        return True
    sources, targets = _alternatives(source), _alternatives(target)
    if sources & targets:
        return True
    # An integer is a fine float; JSON takes any plain value.
    if INT in sources and FLOAT in targets:
        return True
    return JSON in targets and bool(sources & {STRING, INT, FLOAT, BOOLEAN, JSON, MESSAGES})


def constant_fits(port_type: str, value: Any) -> bool:
    """Whether a constant written in a graph file is a plausible value for a port type."""
    kinds = _alternatives(port_type)
    if ANY in kinds or JSON in kinds:
        return True
    checks = {
        STRING: lambda v: isinstance(v, str),
        INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
        FLOAT: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        BOOLEAN: lambda v: isinstance(v, bool),
        MESSAGES: lambda v: isinstance(v, list),
    }
    known = [checks[k] for k in kinds if k in checks]
    if not known:
        # A custom or media type given as a constant (a path, an id, a dict): the node decides.
        return True
    return any(check(value) for check in known)
