"""HomePilot's stand-in for the parts of ``comfy`` that node packs import most."""
