"""Causal language models saved as a transformers folder (config, weights, tokenizer)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.models.manifest import ModelManifest
from nodes.backends.chat import gather


class TransformersBackend:
    def __init__(self, manifest: ModelManifest, weights: Path, device: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device == "cuda" and not torch.cuda.is_available():
            device = "cpu"  # a logical GPU from Ray without CUDA in this torch build
        self.tokenizer = AutoTokenizer.from_pretrained(str(weights))
        self.model = AutoModelForCausalLM.from_pretrained(str(weights)).to(device)
        self.model.eval()
        self.device = device
        self.memory_bytes = manifest.resources.memory or sum(
            p.numel() * p.element_size() for p in self.model.parameters())
        self._lock = threading.Lock()

    def chat_stream(self, messages: list[dict[str, str]], temperature: float = 0.7,
                    max_tokens: int = 256, stop: list[str] | None = None,
                    seed: int | None = None) -> Iterator[dict[str, Any]]:
        import torch
        from transformers import TextIteratorStreamer

        with self._lock:
            prompt = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                        add_generation_prompt=True)
            encoded = self.tokenizer(prompt, return_tensors="pt").to(self.device)
            if seed is not None and seed >= 0:
                torch.manual_seed(seed)
            streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True,
                                            skip_special_tokens=True)
            options: dict[str, Any] = {"max_new_tokens": max_tokens, "streamer": streamer,
                                       "do_sample": temperature > 0}
            if temperature > 0:
                options["temperature"] = temperature
            worker = threading.Thread(target=self.model.generate, kwargs={**encoded, **options})
            worker.start()
            produced, text_so_far, finish = 0, "", "length"
            for piece in streamer:
                if not piece:
                    continue
                text_so_far += piece
                hit = next((s for s in stop or [] if s in text_so_far), None)
                if hit is not None:
                    keep = piece[: max(len(piece) - (len(text_so_far) - text_so_far.index(hit)), 0)]
                    if keep:
                        yield {"text": keep}
                    finish = "stop"
                    break
                produced += 1
                yield {"text": piece}
            worker.join()
            if produced < max_tokens and finish != "stop":
                finish = "stop"
            prompt_tokens = int(encoded["input_ids"].shape[-1])
            yield {"done": True, "finish_reason": finish,
                   "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": produced,
                             "total_tokens": prompt_tokens + produced}}

    def chat(self, messages: list[dict[str, str]], **options: Any) -> dict[str, Any]:
        return gather(self.chat_stream(messages, **options))
