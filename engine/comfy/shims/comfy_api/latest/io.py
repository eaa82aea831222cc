"""V3 schema objects: ``io.Schema``, ``io.Int.Input(...)``, ``io.NodeOutput`` and friends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class _Input:
    id: str
    display_name: str | None = None
    optional: bool = False
    tooltip: str | None = None
    default: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    multiline: bool = False
    options: list[Any] | None = None
    force_input: bool = False
    lazy: bool = False
    io_type: str = "*"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Output:
    id: str | None = None
    display_name: str | None = None
    tooltip: str | None = None
    is_output_list: bool = False
    io_type: str = "*"


class _IOType:
    io_type: ClassVar[str] = "*"

    @classmethod
    def Input(cls, id: str, display_name: str | None = None, optional: bool = False,  # noqa: A002, N802
              tooltip: str | None = None, default: Any = None, min: float | None = None,  # noqa: A002
              max: float | None = None, step: float | None = None,  # noqa: A002
              multiline: bool = False, options: list[Any] | None = None,
              force_input: bool = False, lazy: bool = False, **extra: Any) -> _Input:
        return _Input(id, display_name, optional, tooltip, default, min, max, step, multiline,
                      list(options) if options is not None else None, force_input, lazy,
                      cls.io_type, extra)

    @classmethod
    def Output(cls, id: str | None = None, display_name: str | None = None,  # noqa: A002, N802
               tooltip: str | None = None, is_output_list: bool = False) -> _Output:
        return _Output(id, display_name, tooltip, is_output_list, cls.io_type)


def _type(name: str) -> type[_IOType]:
    return type(name.title().replace("_", ""), (_IOType,), {"io_type": name})


Int = _type("INT")
Float = _type("FLOAT")
String = _type("STRING")
Boolean = _type("BOOLEAN")
Combo = _type("COMBO")
Image = _type("IMAGE")
Mask = _type("MASK")
Latent = _type("LATENT")
Model = _type("MODEL")
Clip = _type("CLIP")
Vae = _type("VAE")
Conditioning = _type("CONDITIONING")
Noise = _type("NOISE")
Sampler = _type("SAMPLER")
Sigmas = _type("SIGMAS")
Guider = _type("GUIDER")
AnyType = _type("*")


def Custom(io_type: str) -> type[_IOType]:  # noqa: N802
    """A pack's own port type, e.g. ``io.Custom("MY_TYPE")``."""
    return _type(io_type)


@dataclass
class Hidden:
    unique_id: str = "UNIQUE_ID"
    prompt: str = "PROMPT"
    extra_pnginfo: str = "EXTRA_PNGINFO"


@dataclass
class Schema:
    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list[_Input] = field(default_factory=list)
    outputs: list[_Output] = field(default_factory=list)
    hidden: list[Any] = field(default_factory=list)
    description: str = ""
    is_output_node: bool = False
    is_input_list: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    search_aliases: list[str] = field(default_factory=list)


class NodeOutput:
    """What ``execute`` returns: output values in order, plus an optional ui dict."""

    def __init__(self, *args: Any, ui: Any = None, expand: Any = None,
                 block_execution: str | None = None) -> None:
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self) -> tuple[Any, ...]:
        return self.args


class ComfyNode:
    """Base class of V3 nodes: ``define_schema`` and ``execute`` are classmethods."""

    @classmethod
    def define_schema(cls) -> Schema:
        raise TypeError(f"{cls.__name__} must define define_schema()")

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        raise TypeError(f"{cls.__name__} must define execute()")
