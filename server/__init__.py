"""HomePilot's HTTP server. Importing the package stays light: ComfyUI packs do
``from server import PromptServer`` inside Ray workers and the CLI."""

from server.prompt_server import PromptServer

__all__ = ["PromptServer"]
