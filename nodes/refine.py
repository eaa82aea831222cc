"""Prompt refinement: a chat model rewrites a short idea as a detailed picture prompt.

HomePilot's web app asks for it on every Imagine request (``promptRefinement: true``) and
names its chat provider (``ollama_base_url``/``ollama_model``, or ``llm_base_url``/
``llm_model``). That provider is tried first; when it cannot be reached, is not allowed,
or answers nothing usable, the local chat model refines instead, and the node says so.
Refinement never fails the picture: with no model at all the prompt is kept as written.
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.errors import EngineError
from engine.sdk import (
    FetchError,
    Input,
    Node,
    NodeContext,
    NodeOutputs,
    node,
    read_capped,
    request_url,
)
from nodes.primitive import INT_LIMIT

INSTRUCTION = (
    "You write prompts for a text-to-image model. Rewrite the user's idea as one vivid, "
    "detailed prompt: the subject, the setting, the lighting, the style and the camera. "
    "Keep every element of the idea. Reply with the prompt only, in one line, under 60 "
    "words.")
SAFE = " Keep it safe for work."  # added unless the request allows adult content
MAX_PROMPT = 600  # characters: the text encoders read 77 tokens anyway
_LEAD = re.compile(r"^\s*(?:(?:refined|improved|image|final)\s+)?prompt\s*:\s*", re.I)


def cleaned(reply: str) -> str:
    """The prompt in a model's reply: its first non-empty line, without a "Prompt:" lead,
    quotes or a trailing ellipsis, at most ``MAX_PROMPT`` characters."""
    line = next((part.strip() for part in reply.splitlines() if part.strip()), "")
    quotes = "\"'`“”"
    line = _LEAD.sub("", line.strip(quotes)).strip().strip(quotes).strip()
    if len(line) > MAX_PROMPT:
        line = line[:MAX_PROMPT].rsplit(" ", 1)[0]
    return line


class RefinementError(RuntimeError):
    """A provider could not refine (unreachable, refused, or an empty answer)."""


def _remote(provider: str, base_url: str, model: str, api_key: str, idea: str,
            timeout: float, seed: int, instruction: str) -> str:
    """The refined prompt from a named provider: Ollama's own ``/api/chat``, else an
    OpenAI-compatible ``/chat/completions`` (``/v1`` added when the URL lacks it)."""
    messages = [{"role": "system", "content": instruction},
                {"role": "user", "content": idea}]
    root = base_url.rstrip("/")
    if provider == "ollama":
        url = (root[:-3] if root.endswith("/v1") else root) + "/api/chat"
        options: dict[str, Any] = {"temperature": 0.4, "num_predict": 120}
        if seed >= 0:
            options["seed"] = seed
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": False,
                                "options": options}
    else:
        url = (root if root.endswith("/v1") else root + "/v1") + "/chat/completions"
        body = {"model": model, "messages": messages, "temperature": 0.4, "max_tokens": 120}
        if seed >= 0:
            body["seed"] = seed
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with request_url("POST", url, json=body, headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                raise RefinementError(f"{provider} at {url} answered {response.status_code}")
            answer = json.loads(read_capped(response, 256 * 1024))
    except FetchError as exc:
        raise RefinementError(f"{provider} at {url} cannot be reached: {exc}") from exc
    except ValueError as exc:
        raise RefinementError(f"{provider} at {url} did not answer JSON") from exc
    if provider == "ollama":
        text = (answer.get("message") or {}).get("content", "") if isinstance(answer, dict) \
            else ""
    else:
        choices = answer.get("choices") if isinstance(answer, dict) else None
        text = ((choices or [{}])[0].get("message") or {}).get("content", "") \
            if isinstance(choices, list) and choices and isinstance(choices[0], dict) else ""
    prompt = cleaned(text if isinstance(text, str) else "")
    if not prompt:
        raise RefinementError(f"{provider} at {url} answered no prompt")
    return prompt


# Idempotent, unlike llm.ChatRemote: a refinement retried because its worker died repeats
# one short rewrite, and the picture task it is fused with may then be retried too.
@node("llm.RefineImagePrompt", category="llm", display_name="Refine Image Prompt")
class RefineImagePrompt(Node):
    """Rewrite a picture idea as a detailed prompt with a chat model.

    The named provider is tried first, else the local model; ``refiner`` says which one
    did it and ``note`` why a fallback happened. Off (``enabled`` false), the prompt
    passes through."""

    prompt: str = Input(description="the user's idea", multiline=True)
    enabled: bool = Input(True, description="off: the prompt is used as written")
    provider: str = Input("", description="ollama or openai_compat; empty: the local model")
    base_url: str = Input("", description="the provider's address (ollama_base_url, "
                                          "llm_base_url)")
    provider_model: str = Input("", description="the provider's model (ollama_model, "
                                                "llm_model)")
    api_key: str = Input("", description="sent as a Bearer token when set")
    model: str = Input("", options_from="models:llm",
                       description="the local chat model; empty: the default")
    safe: bool = Input(True, description="ask for a picture safe for work (HomePilot's "
                                         "nsfwMode off)")
    timeout: float = Input(20.0, min=1, max=600, step=1,
                           description="seconds to wait for the named provider")
    seed: int = Input(0, min=-1, max=INT_LIMIT, description="-1: random")

    class Outputs(NodeOutputs):
        prompt: str
        refiner: str
        note: str

    def run(self, ctx: NodeContext) -> Outputs:
        idea = self.prompt.strip()
        if not self.enabled or not idea:
            return self.Outputs(prompt=self.prompt, refiner="none", note="")
        notes: list[str] = []
        instruction = INSTRUCTION + (SAFE if self.safe else "")
        if self.base_url and self.provider_model:
            provider = self.provider if self.provider in ("ollama", "openai_compat", "openai") \
                else "openai_compat"
            try:
                refined = _remote(provider, self.base_url, self.provider_model, self.api_key, idea,
                                  self.timeout, self.seed, instruction)
                return self.Outputs(prompt=refined, refiner=f"{provider}:{self.provider_model}",
                                    note="")
            except RefinementError as exc:
                notes.append(f"{exc}; the local model refined instead")
        elif self.base_url or self.provider_model:
            notes.append("the provider needs both an address and a model; the local model "
                         "refined instead")
        ctx.check_cancelled()
        try:
            handle = ctx.model("llm", self.model)
        except EngineError as exc:  # no chat model installed (or no model hosts)
            return self.Outputs(prompt=self.prompt, refiner="none",
                                note="; ".join([*notes, f"no local chat model ({exc}): the "
                                                        "prompt was used as written"]))
        reply = handle.call("chat", [{"role": "system", "content": instruction},
                                     {"role": "user", "content": idea}],
                            temperature=0.0, max_tokens=96,
                            seed=self.seed if self.seed >= 0 else None)
        refined = cleaned(str(reply.get("text", "")))
        if not refined or refined.lower() == idea.lower():
            return self.Outputs(prompt=self.prompt, refiner="none", note="; ".join(
                [*notes, f"the local model {handle.id} gave no new prompt: the prompt was "
                         "used as written"]))
        return self.Outputs(prompt=refined, refiner=f"local:{handle.id}", note="; ".join(notes))
