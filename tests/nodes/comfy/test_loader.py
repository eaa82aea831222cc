"""CheckpointLoaderSimple over ComfyUI's checkpoints folder: a dropped-in single-file
checkpoint is hosted like an installed model, with its architecture read from its keys."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.loader import load_graph
from engine.models.store import ModelStore
from engine.settings import get_settings
from nodes.comfy.loader import CHECKPOINTS, checkpoint, installed_checkpoints
from nodes.testpack.install import TINY_CHECKPOINT
from tests.nodes.comfy.test_workflows import WORKFLOWS, saved

NAME = "people/Tiny SD1.safetensors"


@pytest.fixture
def dropped(model_store: ModelStore, test_pack) -> Iterator[Path]:
    """The test pack's checkpoint file copied into models/checkpoints (not its config);
    whatever the run registers for it is removed afterwards, so that it never becomes the
    store's default diffusion model for later tests."""
    installed = model_store.get(TINY_CHECKPOINT)
    weights = model_store.weights(installed)
    target = CHECKPOINTS.path() / NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(weights, target)
    configs = get_settings().models_dir / "configs"
    yield weights.parent / "config"
    target.unlink()
    shutil.rmtree(configs, ignore_errors=True)
    for manifest in model_store.list():
        if manifest.source.startswith("folder:checkpoints/"):
            model_store.remove(manifest.id)


def test_a_dropped_in_checkpoint_is_listed_and_resolves(dropped):
    assert NAME in installed_checkpoints() and TINY_CHECKPOINT in installed_checkpoints()
    assert checkpoint(NAME) == CHECKPOINTS.file(NAME)
    assert checkpoint(TINY_CHECKPOINT) == (TINY_CHECKPOINT, "diffusion")
    for outside in ("../x.safetensors", "people/missing.safetensors", ""):
        with pytest.raises(Exception, match="not in"):
            checkpoint(outside)


def test_a_dropped_in_checkpoint_draws_what_the_installed_one_draws(executor, dropped):
    inputs = {"prompt": "a red fox", "seed": 5, "width": 64, "height": 64, "steps": 2,
              "cfg": 5.0}
    graph = load_graph(WORKFLOWS / "txt2img.json")
    refused = executor.run(graph, {**inputs, "ckpt_name": NAME}, timeout=300)
    assert refused.status == "failed"
    assert "configs/sd1" in refused.error.message and "sd1 checkpoint" in refused.error.message
    shutil.copytree(dropped, get_settings().models_dir / "configs" / "sd1")
    loose = executor.run(graph, {**inputs, "ckpt_name": NAME}, timeout=300)
    assert loose.status == "success", loose.error
    installed = executor.run(graph, {**inputs, "ckpt_name": TINY_CHECKPOINT}, timeout=300)
    assert np.array_equal(saved(loose, "9")[0], saved(installed, "9")[0])
    hosted = [m for m in ModelStore(get_settings().models_dir).list()
              if m.source == f"folder:checkpoints/{NAME}"]
    assert [(m.id, m.kind, m.options["arch"]) for m in hosted] == [
        ("checkpoints-people-tiny-sd1.safetensors", "diffusion", "sd1")]
