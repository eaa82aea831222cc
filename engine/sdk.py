"""The one module node authors import.

    from engine.sdk import Node, NodeContext, NodeOutputs, Input, Output, node, Resources
"""

from engine.context import NodeContext
from engine.declare import ALWAYS, Input, Node, NodeOutputs, Output, node
from engine.errors import RunCancelled
from engine.fetch import FetchError, fetch_url, read_capped, request_url
from engine.files import ReadRefusedError, readable_path
from engine.models.store import ModelNotFoundError
from engine.pictures import FORMATS as PICTURE_FORMATS
from engine.pictures import NAMES as PICTURE_NAMES
from engine.pictures import decode_errors, open_picture
from engine.spec import Resources
from engine.types import (
    AnyValue,
    Audio,
    Document,
    Embedding,
    File,
    Image,
    Json,
    Mask,
    Messages,
    Port,
    Video,
)

__all__ = [
    "ALWAYS", "AnyValue", "Audio", "Document", "Embedding", "FetchError", "File", "Image",
    "Input", "Json",
    "Mask", "Messages", "ModelNotFoundError", "Node", "NodeContext", "NodeOutputs", "Output",
    "Port", "ReadRefusedError", "Resources", "RunCancelled", "Video", "fetch_url", "node",
    "PICTURE_FORMATS", "PICTURE_NAMES", "decode_errors", "open_picture", "read_capped",
    "readable_path", "request_url",
]
