"""Knowledge-base ingestion: a document's text, cut into token windows, embedded.

The nodes return what they make; the server stores it (Ray workers never write the
database), so a failed or cancelled ingestion writes nothing.
"""

from __future__ import annotations

from typing import Any

from engine.sdk import Embedding, File, Input, Json, Node, NodeContext, NodeOutputs, node
from nodes.backends.extract import Section, extract, split

EMBED_BATCH = 64  # the MiniLM host's batch: one full forward pass per call


@node("knowledge.Extract", category="knowledge", display_name="Extract Document Text")
class Extract(Node):
    """The text of an uploaded document: PDF per page, Word, Excel per sheet, plain text.

    A picture gets a caption line (name, size, dominant colours), and the copy to keep
    is re-encoded from its pixels, without EXIF.
    """

    file: File = Input(description="file-store id of the uploaded file")
    name: str = Input(description="the document's name; its suffix says how to read it")

    class Outputs(NodeOutputs):
        sections: Json
        source_type: str
        stored: File
        pages: int

    def run(self, ctx: NodeContext) -> Outputs:
        ctx.progress(0, 1)
        found = extract(ctx.files.read(self.file), self.name)
        stored = self.file
        if found.clean is not None:
            stored = ctx.files.save(found.clean, "." + self.name.rsplit(".", 1)[-1].lower())
        ctx.progress(1, 1)
        return self.Outputs(sections=[vars(s) for s in found.sections],
                            source_type=found.source_type, stored=stored, pages=found.pages)


@node("knowledge.Chunk", category="knowledge", display_name="Chunk by Tokens",
      model_kind="embedding")
class Chunk(Node):
    """Cut sections into overlapping windows of the embedder's own tokens.

    A window never crosses a section, so each chunk keeps its page or sheet.
    """

    sections: Json = Input(description="[{text, page, label}] as Extract gives them")
    size: int = Input(128, min=16, max=512, description="tokens per chunk")
    overlap: int = Input(32, min=0, max=256, description="tokens shared with the next chunk")
    model: str = Input("", options_from="models:embedding",
                       description="embedding model whose tokenizer counts; empty: default")

    class Outputs(NodeOutputs):
        chunks: Json
        count: int

    def run(self, ctx: NodeContext) -> Outputs:
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than size ({self.size})")
        sections = [Section(**s) for s in _sections(self.sections)]
        tokenizer = ctx.model("embedding", self.model)
        chunks: list[dict[str, Any]] = []
        # A few sections per call: a 500-page PDF still reports progress and can stop.
        for start in range(0, len(sections), 16):
            group = sections[start:start + 16]
            offsets = tokenizer.call("token_offsets", [s.text for s in group])
            for section, spans in zip(group, offsets, strict=True):
                for text in split(section.text, [tuple(p) for p in spans], self.size,
                                  self.overlap):
                    chunks.append({"page": section.page, "section": section.label,
                                   "text": text})
            ctx.progress(start + len(group), len(sections))
        return self.Outputs(chunks=chunks, count=len(chunks))


def _sections(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(s, dict) and isinstance(
            s.get("text"), str) for s in value):
        raise ValueError("sections must be a list of {text, page, label} objects")
    return [{"text": s["text"], "page": s.get("page"), "label": s.get("label", "")}
            for s in value]


@node("knowledge.Embed", category="knowledge", display_name="Embed Chunks",
      model_kind="embedding")
class Embed(Node):
    """One vector per chunk, in full batches on the embedding host, with progress."""

    chunks: Json = Input(description="[{text, ...}] as Chunk gives them")
    model: str = Input("", options_from="models:embedding",
                       description="embedding model id; empty picks the default")

    class Outputs(NodeOutputs):
        vectors: Embedding
        batches: int

    def run(self, ctx: NodeContext) -> Outputs:
        if not isinstance(self.chunks, list):
            raise ValueError("chunks must be a list of {text, ...} objects")
        texts = [str(c["text"]) for c in self.chunks]
        if not texts:
            return self.Outputs(vectors=[], batches=0)
        host = ctx.model("embedding", self.model)
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            vectors += host.call("embed", texts[start:start + EMBED_BATCH])
            ctx.progress(len(vectors), len(texts))  # raises when the run was cancelled
        return self.Outputs(vectors=vectors, batches=-(-len(texts) // EMBED_BATCH))
