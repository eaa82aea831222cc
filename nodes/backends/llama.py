"""GGUF chat models through llama-cpp-python."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.models.manifest import ModelManifest
from nodes.backends.chat import PromptTooLong, gather


class LlamaBackend:
    def __init__(self, manifest: ModelManifest, weights: Path, device: str) -> None:
        from llama_cpp import Llama

        options = manifest.options
        self.llm = Llama(model_path=str(weights), n_ctx=int(options.get("n_ctx", 4096)),
                         n_threads=int(options.get("n_threads") or os.cpu_count() or 2),
                         n_gpu_layers=-1 if device == "cuda" else 0, verbose=False,
                         chat_format=options.get("chat_format"))
        self.memory_bytes = manifest.resources.memory or weights.stat().st_size
        # One context per model: generations take turns.
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}

    def chat_stream(self, messages: list[dict[str, str]], temperature: float = 0.7,
                    max_tokens: int = 256, stop: list[str] | None = None,
                    seed: int | None = None) -> Iterator[dict[str, Any]]:
        """Text deltas (``{"text": ...}``), then ``{"done": True, finish_reason, usage}``."""
        with self._lock:
            chunks = self.llm.create_chat_completion(
                messages=messages, temperature=temperature, max_tokens=max_tokens,
                stop=stop or None, seed=seed if seed is not None and seed >= 0 else None,
                stream=True)
            produced = 0
            finish = "stop"
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    text = choice.get("delta", {}).get("content")
                    if text:
                        produced += 1
                        yield {"text": text}
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
            except ValueError as exc:
                # llama-cpp's only word for a prompt longer than n_ctx is this message.
                if "exceed context window" in str(exc):
                    raise PromptTooLong(str(exc)) from None
                raise
            total = int(getattr(self.llm, "n_tokens", produced))
            yield {"done": True, "finish_reason": finish,
                   "usage": {"prompt_tokens": max(total - produced, 0),
                             "completion_tokens": produced, "total_tokens": total}}

    def chat(self, messages: list[dict[str, str]], **options: Any) -> dict[str, Any]:
        return gather(self.chat_stream(messages, **options))

    def chat_json(self, messages: list[dict[str, str]], schema: dict[str, Any],
                  temperature: float = 0.0, max_tokens: int = 512,
                  seed: int | None = None) -> dict[str, Any]:
        """A reply that is JSON matching ``schema``: decoding is constrained by the GBNF
        grammar llama.cpp derives from the schema, so it parses unless ``max_tokens``
        cuts it short (``finish_reason`` "length"). ``{"text", finish_reason, usage}``."""
        grammar = self._grammar(schema)
        with self._lock:
            try:
                reply = self.llm.create_chat_completion(
                    messages=messages, grammar=grammar, temperature=temperature,
                    max_tokens=max_tokens,
                    seed=seed if seed is not None and seed >= 0 else None)
            except ValueError as exc:
                if "exceed context window" in str(exc):
                    raise PromptTooLong(str(exc)) from None
                raise
        choice = reply["choices"][0]
        return {"text": choice["message"].get("content") or "",
                "finish_reason": choice.get("finish_reason") or "stop",
                "usage": dict(reply.get("usage") or {})}

    def _grammar(self, schema: dict[str, Any]) -> Any:
        # Parsing a grammar costs ~12 ms: each schema's is made once per host.
        from llama_cpp import LlamaGrammar

        text = json.dumps(schema, sort_keys=True)
        if text not in self._grammars:
            self._grammars[text] = LlamaGrammar.from_json_schema(text, verbose=False)
        return self._grammars[text]

    def close(self) -> None:
        self.llm.close()
