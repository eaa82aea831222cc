"""Chat with language models: local ones on the model hosts, remote OpenAI-compatible ones."""

from __future__ import annotations

import json
from typing import Any

from engine.sdk import (
    ALWAYS,
    FetchError,
    Input,
    Json,
    Messages,
    Node,
    NodeContext,
    NodeOutputs,
    node,
    read_capped,
    request_url,
)
from nodes.primitive import INT_LIMIT

_ROLES = ("system", "user", "assistant", "tool")


def _check_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {role, content} objects")
    clean = []
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES \
                or not isinstance(message.get("content"), str):
            raise ValueError(f"message {position} must be {{role: one of {', '.join(_ROLES)}, "
                             f"content: text}}, not {message!r}")
        clean.append({"role": message["role"], "content": message["content"]})
    return clean


@node("llm.Messages", category="llm", display_name="Chat Messages")
class BuildMessages(Node):
    """The chat messages for a model: system prompt, earlier turns, then the new message."""

    message: str = Input(multiline=True, description="the user's new message")
    system: str = Input("", multiline=True, description="system prompt; empty for none")
    history: Messages = Input([], description="earlier turns, oldest first")

    class Outputs(NodeOutputs):
        messages: Messages

    def run(self, ctx: NodeContext) -> Outputs:
        turns = _check_messages(self.history) if self.history else []
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages += [t for t in turns if t["role"] != "system" or not self.system]
        messages.append({"role": "user", "content": self.message})
        return self.Outputs(messages=messages)


class _ChatInputs(Node):
    messages: Messages = Input(description="the conversation, oldest first")
    temperature: float = Input(0.7, min=0.0, max=2.0, step=0.05,
                               description="0: always the likeliest words; higher: more varied")
    max_tokens: int = Input(256, min=1, max=32768, description="the longest reply, in tokens")
    stop: Json = Input([], description="strings that end the reply")
    seed: int = Input(-1, min=-1, max=INT_LIMIT, description="-1: random")

    class Outputs(NodeOutputs):
        text: str
        finish_reason: str
        usage: Json
        model: str

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any]) -> Any:
        # Sampling with a random seed gives a new reply each time: never reuse it.
        sampling = (inputs.get("temperature") or 0) > 0
        return ALWAYS if sampling and inputs.get("seed", -1) == -1 else None

    def _stop(self) -> list[str]:
        if isinstance(self.stop, str):
            return [self.stop] if self.stop else []
        if not isinstance(self.stop, list) or not all(isinstance(s, str) for s in self.stop):
            raise ValueError("stop must be a list of strings")
        return self.stop


@node("llm.Chat", category="llm", display_name="Chat (Local Model)", model_kind="llm")
class Chat(_ChatInputs):
    """Reply with a local chat model (GGUF or transformers) on its resident model host.

    Tokens stream out as progress events.
    """

    model: str = Input("", options_from="models:llm",
                       description="model id; empty picks the installed default")

    def run(self, ctx: NodeContext) -> _ChatInputs.Outputs:
        messages = _check_messages(self.messages)
        handle = ctx.model("llm", self.model)
        parts: list[str] = []
        final: dict[str, Any] = {}
        for batch in handle.stream("chat_stream", messages, temperature=self.temperature,
                                   max_tokens=self.max_tokens, stop=self._stop(),
                                   seed=self.seed if self.seed >= 0 else None):
            texts = [piece["text"] for piece in batch if "text" in piece]
            if texts:
                parts.extend(texts)
                ctx.progress(len(parts), self.max_tokens, text="".join(texts))
            final = next((piece for piece in batch if piece.get("done")), final)
        return self.Outputs(text="".join(parts), finish_reason=final.get("finish_reason", "stop"),
                            usage=final.get("usage", {}), model=handle.id)


class RemoteProviderError(RuntimeError):
    """The provider could not be reached or refused the request."""


def _provider_message(response: Any) -> str:
    """': <message>' from an OpenAI-style error body ({"error": {"message": ...}}), else
    nothing: the raw body of whatever answered is never echoed to the caller."""
    try:
        error = json.loads(read_capped(response, 4096)).get("error")
    except (ValueError, AttributeError):
        return ""
    message = error.get("message") if isinstance(error, dict) else error
    return f": {message[:200]}" if isinstance(message, str) and message else ""


# idempotent=False: a provider may bill each call.
@node("llm.ChatRemote", category="llm", display_name="Chat (Remote API)", idempotent=False)
class ChatRemote(_ChatInputs):
    """Reply with an OpenAI-compatible provider (Ollama, vLLM, LM Studio, OpenAI, ...)."""

    base_url: str = Input("http://127.0.0.1:11434/v1", description="the API root, ending /v1")
    api_key: str = Input("", description="sent as a Bearer token when set")
    model: str = Input(description="the provider's model name")
    provider: str = Input("openai_compat", description="a label used in error messages")
    timeout: float = Input(120.0, min=1, max=3600, step=1,
                           description="seconds to wait for the provider")

    def run(self, ctx: NodeContext) -> _ChatInputs.Outputs:
        url = self.base_url.rstrip("/") + "/chat/completions"
        body: dict[str, Any] = {"model": self.model, "messages": _check_messages(self.messages),
                                "temperature": self.temperature,
                                "max_tokens": self.max_tokens, "stream": True}
        if self._stop():
            body["stop"] = self._stop()
        if self.seed >= 0:
            body["seed"] = self.seed
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        parts: list[str] = []
        finish, usage = "stop", {}
        try:
            # Through the guarded client: a base_url from a request may not reach private
            # addresses unless the operator configured or allow-listed them.
            with request_url("POST", url, json=body, headers=headers,
                             timeout=self.timeout) as response:
                if response.status_code >= 400:
                    raise RemoteProviderError(f"{self.provider} at {url} answered "
                                              f"{response.status_code}"
                                              f"{_provider_message(response)}")
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices", []):
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            parts.append(text)
                            ctx.progress(len(parts), self.max_tokens, text=text)
                        finish = choice.get("finish_reason") or finish
        except FetchError as exc:
            raise RemoteProviderError(f"{self.provider} at {url} cannot be reached: "
                                      f"{exc}") from exc
        except (json.JSONDecodeError, AttributeError) as exc:
            raise RemoteProviderError(f"{self.provider} at {url} sent a stream that is not "
                                      f"OpenAI's: {exc}") from exc
        return self.Outputs(text="".join(parts), finish_reason=finish, usage=usage,
                            model=self.model)
