"""Retrieval-augmented answers: fuse two rankings, give the model numbered excerpts, and
append the sources the answer drew on (built here, so citations are always exact)."""

from __future__ import annotations

import re
from typing import Any

from engine.sdk import Input, Json, Node, NodeContext, NodeOutputs, node

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
QUOTE_CHARS = 300


def fuse(rankings: list[list[dict[str, Any]]], top_k: int, k: int = 60) -> list[dict[str, Any]]:
    """Reciprocal rank fusion: each hit scores sum(1 / (k + rank)) over the rankings it is
    in (rank from 1), so agreement between rankings beats a high place in one."""
    scores: dict[Any, float] = {}
    hits: dict[Any, dict[str, Any]] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit["id"]] = scores.get(hit["id"], 0.0) + 1.0 / (k + rank)
            hits.setdefault(hit["id"], hit)
    best = sorted(scores, key=lambda i: (-scores[i], str(i)))[:top_k]
    return [{**hits[i], "score": scores[i]} for i in best]


def place(hit: dict[str, Any]) -> str:
    """How a citation names a chunk: "report.pdf, page 17"."""
    return f"{hit['document']}, {hit['section']}" if hit.get("section") else hit["document"]


def quote(text: str, question: str) -> str:
    """The chunk's sentence sharing the most words with the question, as written."""
    wanted = {w for w in _WORD.findall(question.lower()) if len(w) > 2}
    sentences = [s.strip() for s in _SENTENCE.split(text) if s.strip()] or [text.strip()]
    best = max(sentences, key=lambda s: len(wanted & set(_WORD.findall(s.lower()))))
    return best if len(best) <= QUOTE_CHARS else best[:QUOTE_CHARS - 1] + "…"


@node("knowledge.Fuse", category="knowledge", display_name="Fuse Rankings (RRF)")
class Fuse(Node):
    """Merge the vector and keyword (BM25) rankings by reciprocal rank."""

    hits: Json = Input(description="{vector: [hit...], keyword: [hit...]}, best first")
    top_k: int = Input(4, min=1, max=50, description="how many passages to keep")
    rrf_k: int = Input(60, min=1, max=1000, description="rank damping; 60 is the usual")

    class Outputs(NodeOutputs):
        passages: Json

    def run(self, ctx: NodeContext) -> Outputs:
        if not isinstance(self.hits, dict):
            raise ValueError("hits must be {vector: [...], keyword: [...]}")
        rankings = [list(v) for v in self.hits.values() if isinstance(v, list)]
        return self.Outputs(passages=fuse(rankings, self.top_k, self.rrf_k))


@node("knowledge.Excerpts", category="knowledge", display_name="Prompt with Excerpts")
class Excerpts(Node):
    """The system prompt: the project's instructions, then the numbered passages."""

    instructions: str = Input("", multiline=True, description="the project's instructions")
    passages: Json = Input(description="[{document, section, text}] as Fuse gives them")

    class Outputs(NodeOutputs):
        system: str

    def run(self, ctx: NodeContext) -> Outputs:
        parts = [self.instructions.strip()] if self.instructions.strip() else []
        if self.passages:
            parts.append("Answer from these excerpts of the project's documents; name the "
                         "excerpt you use as [n].")
            parts += [f"[{n}] ({place(p)})\n{p['text']}"
                      for n, p in enumerate(self.passages, start=1)]
        else:
            parts.append("No document of this project matches the question.")
        return self.Outputs(system="\n\n".join(parts))


@node("knowledge.Cite", category="knowledge", display_name="Cite Sources")
class Cite(Node):
    """The answer followed by a Sources part naming each passage's document and page.

    Each source quotes the passage's sentence closest to the question. The part is
    streamed like the answer.
    """

    answer: str = Input(multiline=True, description="the model's reply")
    passages: Json = Input(description="the passages the model was given")
    question: str = Input("", description="the user's message, to pick each quote")

    class Outputs(NodeOutputs):
        text: str
        sources: Json

    def run(self, ctx: NodeContext) -> Outputs:
        sources = [{"n": n, "document": p["document"], "page": p.get("page"),
                    "section": p.get("section", ""), "quote": quote(p["text"], self.question)}
                   for n, p in enumerate(self.passages or [], start=1)]
        if not sources:
            return self.Outputs(text=self.answer, sources=[])
        lines = [f"[{s['n']}] {place(s)}: \"{s['quote']}\"" for s in sources]
        tail = "\n\nSources:\n" + "\n".join(lines)
        ctx.progress(1, 1, text=tail)
        return self.Outputs(text=self.answer + tail, sources=sources)
