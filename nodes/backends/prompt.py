"""ComfyUI's prompt text for CLIP: weights in brackets, 77-token chunks, weighted tokens.

``(word)`` multiplies a weight by 1.1 per level, ``(words:1.3)`` sets it, ``\\(`` is a
literal bracket. Text is cut into chunks of 75 tokens (a word shorter than 8 tokens is
never split), each encoded between start and end tokens and padded to 77; the chunks are
concatenated along the token axis. A weighted token's embedding is pushed away from the
empty prompt's: z_empty + w·(z − z_empty). SDXL runs this for each of its two CLIPs
(penultimate layers, concatenated: ``encode_sdxl``).
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


def chunks(tokenizer: Any, text: str,
           pad: int | None = None) -> list[list[tuple[int, float]]]:
    """Token ids with weights, in chunks of 77: start, up to 75 tokens, end, padding.

    ``pad``: the padding token; None is the tokenizer's own (else the end token). SDXL's
    CLIP-G pads with token 0 whatever its tokenizer says, so its caller passes 0.
    """
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    if pad is None:
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
    return encode_chunks(text_encoder, chunks(tokenizer, text), chunks(tokenizer, "")[0],
                         device)


def encode_chunks(text_encoder: Any, pieces: list[list[tuple[int, float]]],
                  empty: list[tuple[int, float]], device: str = "cpu",
                  penultimate: bool = False) -> tuple[Any, Any]:
    """(embeddings 1×77k×D, pooled 1×P) of tokenized chunks; ``empty`` is the empty
    prompt's chunk, the reference weighted tokens are pushed from.

    The embeddings are the last layer after the final layer norm (SD1), or with
    ``penultimate`` the hidden states entering the last layer, not normalised (SDXL's L
    and G). The pooled vector is the first chunk's: the projection (``text_embeds``) of a
    text model with one, else the pooler output.
    """
    import torch

    def hidden(output: Any) -> Any:
        return output.hidden_states[-2] if penultimate else output.last_hidden_state

    def run(ids: Any) -> Any:
        # SD1 calls the encoder exactly as before; hidden states only when needed.
        return text_encoder(ids, output_hidden_states=True) if penultimate \
            else text_encoder(ids)

    weighted = any(w != 1.0 for chunk in pieces for _, w in chunk)
    ids = torch.tensor([[token for token, _ in chunk] for chunk in pieces], device=device)
    with torch.no_grad():
        output = run(ids)
        embeds = hidden(output).float().cpu()
        pooled = getattr(output, "text_embeds", None)
        if pooled is None:
            pooled = getattr(output, "pooler_output", None)
        if weighted:
            empty_ids = torch.tensor([[token for token, _ in empty]], device=device)
            reference = hidden(run(empty_ids)).float().cpu()
            weights = torch.tensor([[w for _, w in chunk] for chunk in pieces]).unsqueeze(-1)
            embeds = reference + weights * (embeds - reference)
    first_pooled = pooled[:1].float().cpu() if pooled is not None else None
    return embeds.reshape(1, -1, embeds.shape[-1]), first_pooled


def encode_sdxl(pipeline: Any, text_g: str, text_l: str,
                device: str = "cpu") -> tuple[Any, Any]:
    """(embeddings 1×77k×(L+G), pooled 1×P) as ComfyUI's SDXL CLIP gives them: CLIP-L
    (``text_encoder``, padded with its end token) reads ``text_l`` and CLIP-G
    (``text_encoder_2``, padded with token 0) reads ``text_g``; both give their penultimate
    layer, concatenated L then G along the features; pooled is G's projection. A side with
    fewer chunks is padded with empty-prompt chunks so the two line up along the tokens."""
    import torch

    tokenizer_l, tokenizer_g = pipeline.tokenizer, pipeline.tokenizer_2
    if tokenizer_l is None or pipeline.text_encoder is None:
        # The refiner: G alone, and its UNet wants aesthetic scores in place of target sizes.
        raise ValueError("this SDXL checkpoint has no CLIP-L text encoder (a refiner?): "
                         "only SDXL base-style checkpoints are sampled here")
    pieces_l, pieces_g = chunks(tokenizer_l, text_l), chunks(tokenizer_g, text_g, pad=0)
    empty_l, empty_g = chunks(tokenizer_l, ""), chunks(tokenizer_g, "", pad=0)
    pieces_l += empty_l * (len(pieces_g) - len(pieces_l))
    pieces_g += empty_g * (len(pieces_l) - len(pieces_g))
    embeds_l, _ = encode_chunks(pipeline.text_encoder, pieces_l, empty_l[0], device,
                                penultimate=True)
    embeds_g, pooled = encode_chunks(pipeline.text_encoder_2, pieces_g, empty_g[0], device,
                                     penultimate=True)
    return torch.cat([embeds_l, embeds_g], dim=-1), pooled
