"""HomePilot's stand-in for ComfyUI's ``comfy_api`` package (the V3 node API).

Only the surface custom node packs commonly use is provided; see README "ComfyUI packs".
"""
