"""ComfyUI's prompt text for CLIP: weights in brackets, 77-token chunks, weighted tokens.

``(word)`` multiplies a weight by 1.1 per level, ``(words:1.3)`` sets it, ``\\(`` is a
literal bracket. Text is cut into chunks of 75 tokens (a word shorter than 8 tokens is
never split), each encoded between start and end tokens and padded to 77; the chunks are
concatenated along the token axis. A weighted token's embedding is pushed away from the
empty prompt's: z_empty + w·(z − z_empty).
"""

from __future__ import annotations

from typing import Any

CHUNK = 77
LONG_WORD = 8  # words of at least this many tokens may be split across chunks
_OPEN, _CLOSE = "\0\2", "\0\1"  # escaped brackets while parsing


def weighted_segments(text: str, weight: float = 1.0) -> list[tuple[str, float]]:
    """The prompt cut into (text, weight) runs."""
    escaped = text.replace("\\(", _OPEN).replace("\\)", _CLOSE)
    return [(piece.replace(_OPEN, "(").replace(_CLOSE, ")"), w)
            for piece, w in _weights(escaped, weight)]


def _groups(text: str) -> list[str]:
    """Top-level runs: plain text and whole ``( ... )`` groups."""
    groups, current, depth = [], "", 0
    for char in text:
        if char == "(" and depth == 0:
            if current:
                groups.append(current)
            current, depth = "(", 1
        elif char == "(":
            current += char
            depth += 1
        elif char == ")" and depth > 0:
            current += char
            depth -= 1
            if depth == 0:
                groups.append(current)
                current = ""
        else:
            current += char
    if current:
        groups.append(current)
    return groups


def _weights(text: str, weight: float) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for group in _groups(text):
        if len(group) >= 2 and group[0] == "(" and group[-1] == ")":
            inner, inner_weight = group[1:-1], weight * 1.1
            colon = inner.rfind(":")
            if colon > 0:
                try:
                    inner_weight = float(inner[colon + 1:])
                    inner = inner[:colon]
                except ValueError:
                    pass
            out += _weights(inner, inner_weight)
        else:
            out.append((group, weight))
    return out


def chunks(tokenizer: Any, text: str) -> list[list[tuple[int, float]]]:
    """Token ids with weights, in chunks of 77: start, up to 75 tokens, end, padding."""
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end
    words: list[list[tuple[int, float]]] = []
    for piece, weight in weighted_segments(text):
        for word in piece.replace("\n", " ").split(" "):
            if word:
                ids = tokenizer(word, add_special_tokens=False)["input_ids"]
                words.append([(i, weight) for i in ids])
    batches: list[list[tuple[int, float]]] = []
    batch: list[tuple[int, float]] = [(start, 1.0)]

    def close() -> None:
        nonlocal batch
        batch.append((end, 1.0))
        batch.extend([(pad, 1.0)] * (CHUNK - len(batch)))
        batches.append(batch)
        batch = [(start, 1.0)]

    for group in words:
        long_word = len(group) >= LONG_WORD
        while group:
            room = CHUNK - 1 - len(batch)
            if len(group) > room:
                if long_word:
                    batch.extend(group[:room])
                    group = group[room:]
                close()
            else:
                batch.extend(group)
                group = []
    if len(batch) > 1 or not batches:
        close()
    return batches


def encode(tokenizer: Any, text_encoder: Any, text: str, device: str = "cpu") -> tuple[Any, Any]:
    """(embeddings 1×77k×D, pooled 1×D) of the prompt, as ComfyUI's SD1 CLIP gives them."""
    import torch

    pieces = chunks(tokenizer, text)
    weighted = any(w != 1.0 for chunk in pieces for _, w in chunk)
    ids = torch.tensor([[token for token, _ in chunk] for chunk in pieces], device=device)
    with torch.no_grad():
        output = text_encoder(ids)
        embeds = output.last_hidden_state.float().cpu()
        pooled = getattr(output, "pooler_output", None)
        if weighted:
            empty = text_encoder(torch.tensor([[token for token, _ in chunks(tokenizer, "")[0]]],
                                              device=device)).last_hidden_state.float().cpu()
            weights = torch.tensor([[w for _, w in chunk] for chunk in pieces]).unsqueeze(-1)
            embeds = empty + weights * (embeds - empty)
    first_pooled = pooled[:1].float().cpu() if pooled is not None else None
    return embeds.reshape(1, -1, embeds.shape[-1]), first_pooled
