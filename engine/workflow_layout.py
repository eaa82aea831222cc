"""Where editor nodes go: columns by topological layer, left to right, none overlapping.

Sizes are estimated the way litegraph's ``LGraphNode.computeSize`` measures a node
(``NODE_SLOT_HEIGHT`` 20 per socket row, ``NODE_WIDGET_HEIGHT`` 20 + 4 per widget, text
at 0.6 x 14 px per character when no canvas measures it, 1.5 x ``NODE_WIDTH`` minimum
with widgets, +60 px as ``setInitialSize`` pads a new node). The editor only ever grows a
node to its computed size on load, so generous estimates keep the columns apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

TITLE_HEIGHT = 30          # drawn above pos[1]
SLOT_HEIGHT = 20
WIDGET_ROW = 24            # NODE_WIDGET_HEIGHT + 4
MULTILINE_ROW = 84         # a textarea: the DOM widget's 50 px minimum, with room to read
CHAR = 8.4                 # NODE_TEXT_SIZE * 0.6
COLUMN_GAP = 80
ROW_GAP = 30
MAX_WIDTH = 480
VIEW = (1300.0, 720.0)     # the canvas a first view should fit: a laptop's, less the bars
MARGIN = (80.0, 100.0)     # screen pixels left of and above the graph in that view
MIN_SCALE = 0.6
# HomePilot's editor extension (server/editor/web/homepilot.js) gives the nodes that show
# text ComfyUI's text preview: a 60 px box and a plain/markdown toggle, neither saved.
TEXT_PREVIEW = ("graph.Output", "primitive.Show")
PREVIEW_HEIGHT = 60 + 4 + 20 + 4


@dataclass(slots=True)
class Box:
    """One node to place: its size and the nodes it takes links from."""

    key: str
    size: tuple[float, float]
    sources: list[str] = field(default_factory=list)
    pin: str = ""            # "first": column 0 (graph inputs), "last": final column
    before: str | None = None  # place in the column before this node (a feeder)


def node_size(title: str, sockets: list[str], outputs: list[str],
              widgets: list[tuple[str, str, bool]], preview: bool = False
              ) -> tuple[float, float]:
    """(width, height) for a node: socket names, output names, and widgets as
    (label, value text, multiline); ``preview``: it shows text when it has run."""
    def text(s: str) -> float:
        return CHAR * len(s)

    title_w = TITLE_HEIGHT * 1.33 + text(title)
    ins = max((text(s) for s in sockets), default=0.0)
    outs = max((text(s) for s in outputs), default=0.0)
    slots_w = ins + outs + 2 * SLOT_HEIGHT + (5 if ins and outs else 0)
    # label, the value beside it (shortened as the widget would), arrows and margins
    widget_w = max((text(label) + text(value[:24]) + 104 for label, value, multi in widgets
                    if not multi), default=0.0)
    width = max(title_w, slots_w, widget_w, 210.0 if widgets else 140.0)
    if widgets:
        width += 60
    rows = max(len(sockets), len(outputs), 1)
    height = rows * SLOT_HEIGHT + 6
    if widgets:
        height += sum(MULTILINE_ROW if multi else WIDGET_ROW for _, _, multi in widgets) + 8
    if preview:
        height += PREVIEW_HEIGHT + (0 if widgets else 8)
        width = max(width, 270)
    return min(round(width / 10) * 10, MAX_WIDTH), round(height)


def layout(boxes: list[Box]) -> dict[str, tuple[float, float]]:
    """Positions (the top-left of each node's body, below its title bar) by key."""
    dag = nx.DiGraph()
    dag.add_nodes_from(box.key for box in boxes)
    by_key = {box.key: box for box in boxes}
    dag.add_edges_from((src, box.key) for box in boxes for src in box.sources if src in by_key)
    layer = {key: index for index, generation in enumerate(nx.topological_generations(dag))
             for key in generation}
    for box in boxes:  # a feeder sits right before the node it feeds, not far left
        if box.before in layer and not box.sources:
            layer[box.key] = max(layer[box.before] - 1, 0)
    last = max((layer[b.key] for b in boxes if b.pin != "last"), default=-1) + 1
    for box in boxes:
        if box.pin == "first":
            layer[box.key] = 0
        elif box.pin == "last":
            layer[box.key] = last
    columns: dict[int, list[Box]] = {}
    for box in boxes:  # in the caller's order: the graph file's
        columns.setdefault(layer[box.key], []).append(box)
    positions: dict[str, tuple[float, float]] = {}
    stacks: list[tuple[float, list[Box]]] = []
    x = 0.0
    tallest = max((_height(c) for i, c in columns.items() if i != 0), default=0.0)
    for index in sorted(columns):
        column = columns[index]
        centres = {b.key: _centre(b, positions, by_key) for b in column}
        ordered = [column[i] for i in sorted(range(len(column)),
                                             key=lambda i: (centres[column[i].key], i))]
        limit = max(tallest, VIEW[1]) if index == 0 else float("inf")
        for part in _wrap(ordered, limit):  # many graph inputs: side by side, not one tower
            _stack(x, part, positions)
            stacks.append((x, part))
            x += max(b.size[0] for b in part) + COLUMN_GAP
    # Feeders (templates, constants) move next to the node they feed, now that it is placed.
    for x, part in stacks:
        if any(b.before in positions for b in part):
            def level(box: Box) -> float:
                key = box.before if box.before in positions else box.key
                return positions[key][1] + by_key[key].size[1] / 2
            _stack(x, sorted(part, key=level), positions)
    return positions


def _stack(x: float, part: list[Box], positions: dict[str, tuple[float, float]]) -> None:
    y = 0.0
    for box in part:
        positions[box.key] = (round(x), round(y + TITLE_HEIGHT))
        y += TITLE_HEIGHT + box.size[1] + ROW_GAP


def _height(column: list[Box]) -> float:
    return sum(TITLE_HEIGHT + b.size[1] + ROW_GAP for b in column)


def _wrap(column: list[Box], limit: float) -> list[list[Box]]:
    """The column cut into columns no taller than ``limit`` (at least one node each)."""
    parts: list[list[Box]] = [[]]
    for box in column:
        if parts[-1] and _height(parts[-1]) + TITLE_HEIGHT + box.size[1] > limit:
            parts.append([])
        parts[-1].append(box)
    return parts


def _centre(box: Box, placed: dict[str, tuple[float, float]], boxes: dict[str, Box]) -> float:
    """Barycentre of a node's sources, so links run mostly straight; -1 keeps the caller's
    order for nodes whose sources are not placed yet (the first column)."""
    sources = box.sources
    if not sources and box.before in boxes:  # a feeder: near what its node's sources are
        sources = boxes[box.before].sources
    ys = [placed[s][1] + boxes[s].size[1] / 2 for s in sources if s in placed]
    return sum(ys) / len(ys) if ys else -1.0


def view(positions: dict[str, tuple[float, float]],
         sizes: dict[str, tuple[float, float]]) -> dict[str, object]:
    """``extra.ds``: a scale that fits the graph in a first view, but never below the zoom
    where litegraph stops drawing text (MinFontSizeForLOD 8 px / 14 px = 0.57), and an
    offset that keeps the first column clear of the editor's side bar and tool bar."""
    if not positions:
        return {"scale": 1, "offset": [0, 0]}
    right = max(positions[k][0] + sizes[k][0] for k in positions)
    bottom = max(positions[k][1] + sizes[k][1] for k in positions)
    scale = min(1.0, VIEW[0] / right, VIEW[1] / bottom)
    scale = max(round(scale, 2), MIN_SCALE)
    return {"scale": scale, "offset": [round(MARGIN[0] / scale), round(MARGIN[1] / scale)]}
