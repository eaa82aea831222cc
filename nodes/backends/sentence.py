"""Sentence embedders through sentence-transformers, batched by the model host."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from engine.models.manifest import ModelManifest


class SentenceBackend:
    # Concurrent embed() requests are merged into one forward pass of up to 64 texts.
    batchable = {"embed": 64}

    def __init__(self, manifest: ModelManifest, weights: Path, device: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        if device == "cuda" and not torch.cuda.is_available():
            device = "cpu"  # a logical GPU from Ray without CUDA in this torch build
        self.model = SentenceTransformer(str(weights), device=device)
        dimension = getattr(self.model, "get_embedding_dimension", None) \
            or self.model.get_sentence_embedding_dimension
        self.dimensions = int(dimension() or 0)
        self.memory_bytes = manifest.resources.memory
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            vectors = self.model.encode(list(texts), convert_to_numpy=True,
                                        show_progress_bar=False)
        return vectors.tolist()

    def token_offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Each text's tokens as (start, end) character offsets, in this model's own
        tokenizer (no special tokens): chunking by them fits the model's window exactly."""
        encoded = self.model.tokenizer(list(texts), add_special_tokens=False,
                                       return_offsets_mapping=True, verbose=False)
        return [[(int(a), int(b)) for a, b in offsets]
                for offsets in encoded["offset_mapping"]]
