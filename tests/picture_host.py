"""A small picture host on 127.0.0.1 for fetch tests: real HTTP, no outside network.

``/p.png`` is a 64x48 PNG, ``/p.ppm`` the same picture as a PPM (a format Pillow reads
but the server does not take), ``/notes.txt`` is text, ``/to?url=U`` redirects to U.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image


def _picture(fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 90)).save(buffer, format=fmt)
    return buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server spelling
        parts = urlsplit(self.path)
        if parts.path == "/to":
            self.send_response(302)
            self.send_header("location", parse_qs(parts.query)["url"][0])
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if parts.path == "/p.png":
            body, kind, status = _picture(), "image/png", 200
        elif parts.path == "/p.ppm":
            body, kind, status = _picture("PPM"), "image/x-portable-pixmap", 200
        elif parts.path == "/notes.txt":
            body, kind, status = b"just some text", "text/plain", 200
        else:
            body, kind, status = b"not here", "text/plain", 404
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving() -> Iterator[str]:
    """The host's base URL (http://127.0.0.1:<port>) while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
