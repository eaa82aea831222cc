"""ComfyUI custom node packs: discovery, adapters (classic and V3) and import shims."""
