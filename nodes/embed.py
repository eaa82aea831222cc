"""Text embeddings on the embedding model hosts, and nearest neighbours by cosine."""

from __future__ import annotations

import math
from typing import Any

from engine.sdk import Embedding, Input, Json, Node, NodeContext, NodeOutputs, node


@node("embed.Text", category="embed", display_name="Embed Text", model_kind="embedding")
class EmbedText(Node):
    """Turn texts into vectors with an embedding model, one vector per text.

    Concurrent requests share forward passes on the model host.
    """

    texts: Json = Input(description="a list of strings (or one string)")
    model: str = Input("", options_from="models:embedding",
                       description="embedding model id; empty picks the default")

    class Outputs(NodeOutputs):
        vectors: Embedding
        dimensions: int
        model: str

    def run(self, ctx: NodeContext) -> Outputs:
        texts = [self.texts] if isinstance(self.texts, str) else self.texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a string or a list of strings")
        if not texts:
            return self.Outputs(vectors=[], dimensions=0, model=self.model)
        handle = ctx.model("embedding", self.model)
        vectors = handle.call("embed", texts)
        return self.Outputs(vectors=vectors, dimensions=len(vectors[0]), model=handle.id)


def _vector_list(value: Any, name: str) -> list[list[float]]:
    if isinstance(value, list) and value and all(isinstance(x, (int, float)) for x in value):
        return [list(map(float, value))]
    if isinstance(value, list) and all(isinstance(v, list) for v in value):
        return [list(map(float, v)) for v in value]
    raise ValueError(f"{name} must be a vector or a list of vectors")


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


@node("embed.TopK", category="embed", display_name="Top K Similar")
class TopK(Node):
    """The k candidates most similar to the query (cosine similarity), best first."""

    query: Embedding = Input(description="one vector (or a list holding one)")
    candidates: Embedding = Input(description="the vectors to rank")
    k: int = Input(3, min=1, max=10000, description="how many to return")

    class Outputs(NodeOutputs):
        indices: Json
        scores: Json

    def run(self, ctx: NodeContext) -> Outputs:
        query = _vector_list(self.query, "query")[0]
        candidates = _vector_list(self.candidates, "candidates") if self.candidates else []
        if any(len(c) != len(query) for c in candidates):
            raise ValueError(f"candidates must have {len(query)} dimensions like the query")
        scored = sorted(((cosine(query, c), i) for i, c in enumerate(candidates)),
                        key=lambda pair: (-pair[0], pair[1]))[: self.k]
        return self.Outputs(indices=[i for _, i in scored], scores=[s for s, _ in scored])
