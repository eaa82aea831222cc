"""How the editor lays out one node type: its input sockets, widgets and outputs.

This follows comfyui-frontend 1.58.1 applied to our ``/object_info`` entries
(``server/services/comfy.py``):

- ``litegraphService.addInputs`` orders inputs by ``input_order`` (required, then
  optional), then adds every input without a widget as a socket, and after them every
  widget, each with an input socket of its own (``widget: {name}``). So a node's
  ``inputs`` list is: plain sockets in order, then widget inputs in order.
- An input is a widget when the frontend has a widget for its type (INT, FLOAT,
  STRING, BOOLEAN, COMBO — a choice list) and it is not ``forceInput`` (our link-only).
- ``useIntWidget``: an INT input named ``seed`` or ``noise_seed`` (or one whose options
  set ``control_after_generate``) gets a second widget right after it, the
  ``control_after_generate`` combo (fixed / increment / decrement / randomize). Its value
  is saved in ``widgets_values`` (``LGraphNode.serialize`` skips only widgets with
  ``serialize === false``, and this one sets ``options.serialize = false``, which only
  keeps it out of the API prompt: ``executionUtil.graphToPrompt``).
- ``extensions/core/uploadImage.ts``: the first required combo whose options ask for
  ``image_upload`` (our ``options_from="input_images"``) gets an ``upload`` input
  (IMAGEUPLOAD); it is not in ``input_order``, so it comes after every other input, and
  its button widget saves the value "image" (ComfyUI's LoadImage: ["x.png", "image"])
  but, ``options.serialize = false``, never reaches the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine import types as t
from engine.spec import InputSpec, NodeSpec

WIDGET_TYPES = (t.INT, t.FLOAT, t.STRING, t.BOOLEAN)
COMBO = "COMBO"
CONTROL = "control_after_generate"
# The frontend's CONTROL_OPTIONS; "fixed" leaves the value alone between runs, which is
# what a graph file means (a seed of -1 already asks for a random one).
CONTROL_FIXED = "fixed"
_SEED_NAMES = ("seed", "noise_seed")
UPLOAD, UPLOAD_TYPE, UPLOAD_VALUE = "upload", "IMAGEUPLOAD", "image"
INPUT_IMAGES = "input_images"


@dataclass(frozen=True, slots=True)
class Widget:
    name: str
    type: str                 # the slot type the frontend gives it (INT, COMBO, ...)
    spec: InputSpec | None    # None: a widget that is no node input (the upload button)
    control: bool = False     # followed by a control_after_generate value

    @property
    def in_prompt(self) -> bool:
        return self.spec is not None


@dataclass(frozen=True, slots=True)
class NodeSlots:
    """One node type as the editor shows it."""

    sockets: tuple[InputSpec, ...]      # inputs that are only sockets, in order
    widgets: tuple[Widget, ...]         # inputs that are widgets, in order
    outputs: tuple[tuple[str, str], ...]  # (name, type)

    @property
    def input_names(self) -> list[str]:
        """The node's ``inputs`` list: sockets first, then one per widget."""
        return [s.name for s in self.sockets] + [w.name for w in self.widgets]

    def input_type(self, name: str) -> str:
        for socket in self.sockets:
            if socket.name == name:
                return socket.type
        for widget in self.widgets:
            if widget.name == name:
                return widget.type
        return t.ANY

    def widget(self, name: str) -> Widget | None:
        return next((w for w in self.widgets if w.name == name), None)

    def values_count(self) -> int:
        """How many entries ``widgets_values`` holds."""
        return sum(2 if w.control else 1 for w in self.widgets)


def _is_combo(spec: InputSpec) -> bool:
    # GET /object_info writes closed choices, and open ones (installed models, input
    # pictures: options_from), as a list of values: the frontend's COMBO. (This follows
    # server/services/comfy.py; test_workflow checks it for every registered node.)
    return spec.choices is not None or getattr(spec, "options_from", None) is not None


def widget_type(spec: InputSpec) -> str | None:
    """The widget the frontend makes for an input, or None for a plain socket."""
    if spec.link_only or spec.kind == "hidden":
        return None
    if _is_combo(spec):
        return COMBO
    return spec.type if spec.type in WIDGET_TYPES else None


def node_slots(spec: NodeSpec) -> NodeSlots:
    ordered = [i for i in spec.inputs if i.kind == "required"] + \
              [i for i in spec.inputs if i.kind == "optional"]
    sockets: list[InputSpec] = []
    widgets: list[Widget] = []
    for item in ordered:
        kind = widget_type(item)
        if kind is None:
            sockets.append(item)
        else:
            control = kind == t.INT and item.name in _SEED_NAMES
            widgets.append(Widget(item.name, kind, item, control))
    if any(w.spec is not None and w.spec.kind == "required" and w.type == COMBO
           and getattr(w.spec, "options_from", None) == INPUT_IMAGES for w in widgets):
        widgets.append(Widget(UPLOAD, UPLOAD_TYPE, None))
    return NodeSlots(tuple(sockets), tuple(widgets),
                     tuple((o.name, o.type) for o in spec.outputs))


def widget_default(widget: Widget) -> object:
    """What the frontend puts in a new widget (``useIntWidget`` & co.: 0, "", false, the
    first choice) when the input declares no default."""
    if widget.spec is None:
        return UPLOAD_VALUE
    if widget.spec.default is not None:
        return widget.spec.default
    if widget.type == COMBO and widget.spec.choices:
        return widget.spec.choices[0]
    return {t.INT: 0, t.FLOAT: 0.0, t.BOOLEAN: False}.get(widget.type, "")
