"""``from comfy_api.latest import ComfyExtension, io`` as V3 packs write it."""

from __future__ import annotations

from comfy_api.latest import io
from comfy_api.latest.io import ComfyNode, NodeOutput, Schema


class ComfyExtension:
    """What a pack's ``comfy_entrypoint()`` returns."""

    async def on_load(self) -> None:
        """Called once before ``get_node_list``."""

    async def get_node_list(self) -> list[type[ComfyNode]]:
        return []


ui = None  # preview helpers are not provided; a pack using them is skipped with a log line

__all__ = ["ComfyExtension", "ComfyNode", "NodeOutput", "Schema", "io"]
