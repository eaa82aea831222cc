"""The output cache: signature -> a node's outputs, least recently used first out."""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Any


def estimate_size(value: Any) -> int:
    """A cheap guess at the bytes a value holds (exactness is not the point; bounds are)."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if hasattr(value, "size") and hasattr(value, "mode") and hasattr(value, "getbands"):
        width, height = value.size
        return width * height * len(value.getbands())
    if isinstance(value, (bytes, bytearray, str)):
        return len(value) + 49
    if isinstance(value, (list, tuple)):
        return 56 + sum(estimate_size(v) for v in value[:1000])
    if isinstance(value, dict):
        return 64 + sum(estimate_size(v) for v in list(value.values())[:1000])
    return sys.getsizeof(value) if isinstance(value, (int, float, bool)) else 64


class OutputCache:
    """Bounded by entry count and by estimated bytes; safe to share between threads."""

    def __init__(self, max_entries: int = 20_000, max_bytes: int = 2 * 1024**3) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, signature: str) -> Any | None:
        with self._lock:
            entry = self._entries.get(signature)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(signature)
            self.hits += 1
            return entry[0]

    def __contains__(self, signature: str) -> bool:
        return signature in self._entries

    def put(self, signature: str, value: Any, size: int) -> None:
        if size > self.max_bytes:
            return  # larger than the whole cache: keeping it would evict everything else
        with self._lock:
            old = self._entries.pop(signature, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[signature] = (value, size)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted

    def discard(self, signature: str) -> None:
        with self._lock:
            entry = self._entries.pop(signature, None)
            if entry is not None:
                self._bytes -= entry[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._entries), "bytes": self._bytes, "hits": self.hits,
                "misses": self.misses, "max_entries": self.max_entries,
                "max_bytes": self.max_bytes}
