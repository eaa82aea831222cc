"""Cache signatures: a node's key is its type, version, constants, fingerprint and its
inputs' signatures. Each signature is a fixed-size digest of its parents' digests, so the
cost is linear in the graph (ComfyUI nests whole ancestor signatures: quadratic)."""

from __future__ import annotations

import hashlib
import math
import secrets
from typing import Any

from engine.plan import Plan

_VOLATILE = object()


def _fingerprint(node_consts: dict[str, Any], hook: Any) -> Any:
    try:
        value = hook(node_consts)
    except Exception as exc:  # a pack's IS_CHANGED failing must not break the run
        return f"fingerprint-error:{type(exc).__name__}"
    if isinstance(value, float) and math.isnan(value):
        return _VOLATILE
    return value


def sign(plan: Plan) -> None:
    """Fill ``signature`` and ``volatile`` on every plan node (topological order)."""
    nonce = secrets.token_hex(8)
    signatures: dict[str, str] = {}
    volatile: dict[str, bool] = {}
    for node in plan.nodes.values():
        spec = node.definition.spec
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{spec.type}\0{spec.version}\0".encode())
        digest.update(repr(sorted(node.consts.items())).encode())
        is_volatile = not spec.deterministic
        if node.definition.is_changed is not None:
            extra = _fingerprint(node.consts, node.definition.is_changed)
            if extra is _VOLATILE:
                is_volatile = True
            else:
                digest.update(repr(extra).encode())
        for name in sorted(node.links):
            source, index = node.links[name]
            digest.update(f"\0{name}\0{signatures[source]}\0{index}".encode())
            is_volatile = is_volatile or volatile[source]
        for name in sorted(node.templates):
            template = node.templates[name]
            digest.update(f"\0{name}\0{template.template.parts!r}".encode())
            for ref, (source, index) in template.links.items():
                digest.update(f"\0{ref}\0{signatures[source]}\0{index}".encode())
                is_volatile = is_volatile or volatile[source]
        if is_volatile:
            # A volatile node and everything downstream of it differ on every run.
            digest.update(nonce.encode())
        node.signature = signatures[node.id] = digest.hexdigest()
        node.volatile = volatile[node.id] = is_volatile
