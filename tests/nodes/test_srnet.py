"""Super-resolution nets: the public checkpoint layouts load, and the tiled backend."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.models.manifest import ModelManifest
from nodes.backends.srnet import (
    RRDBNet,
    SRModel,
    SRVGGNetCompact,
    load_sr_file,
    load_sr_model,
)
from nodes.backends.upscaler import UpscalerBackend
from nodes.testpack.upscaler import build_tiny_srvgg, build_tiny_upscaler


def _rrdb_state(seed: int = 0, **sizes: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    config = {"in_ch": 3, "out_ch": 3, "num_feat": 8, "num_block": 2, "num_grow_ch": 4,
              "num_upsample": 2} | sizes
    return RRDBNet(**config).state_dict()


def _to_old_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BasicSR names back to the original ESRGAN flattened-Sequential names (x4)."""
    blocks = len({key.split(".")[1] for key in state if key.startswith("body.")})
    top = {"conv_first": "model.0", "conv_body": f"model.1.sub.{blocks}",
           "conv_up1": "model.3", "conv_up2": "model.6", "conv_hr": "model.8",
           "conv_last": "model.10"}
    old = {}
    for key, value in state.items():
        if match := re.match(r"^body\.(\d+)\.rdb(\d)\.conv(\d)\.(\w+)$", key):
            block, rdb, conv, kind = match.groups()
            old[f"model.1.sub.{block}.RDB{rdb}.conv{conv}.0.{kind}"] = value
        else:
            prefix, _, kind = key.rpartition(".")
            old[f"{top[prefix]}.{kind}"] = value
    return old


def _image(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = len(mode)
    return Image.fromarray(rng.integers(0, 256, (height, width, channels), dtype=np.uint8))


def _pixels(width: int, height: int) -> torch.Tensor:
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1))


def _run(model: SRModel, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.module.eval()(x)


def _manifest(path: Path) -> ModelManifest:
    return ModelManifest(id="tiny-upscaler", kind="upscaler", format="pth",
                         source="test-pack", path=str(path),
                         backend="nodes.backends.upscaler:UpscalerBackend", test=True)


# -- layouts ------------------------------------------------------------------------------


def test_basicsr_layout_loads_with_inferred_sizes() -> None:
    model = load_sr_model(_rrdb_state(num_feat=8, num_block=2, num_grow_ch=4))
    assert (model.arch, model.scale) == ("esrgan", 4)
    assert len(model.module.body) == 2
    assert model.module.body[0].rdb1.conv1.out_channels == 4
    assert _run(model, _pixels(10, 7)).shape == (1, 3, 28, 40)


def test_old_esrgan_layout_loads_and_matches_the_new_layout() -> None:
    state = _rrdb_state(seed=3)
    old = _to_old_layout(state)
    assert "model.1.sub.0.RDB1.conv1.0.weight" in old and "model.10.weight" in old
    new_model, old_model = load_sr_model(state), load_sr_model(old)
    assert (old_model.arch, old_model.scale) == ("esrgan", 4)
    x = _pixels(12, 9)
    assert torch.equal(_run(new_model, x), _run(old_model, x))


def test_later_esrgan_repo_layout_matches_basicsr() -> None:
    state = _rrdb_state(seed=4)
    names = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2",
             "conv_hr": "HRconv"}
    mid = {}
    for key, value in state.items():
        if match := re.match(r"^body\.(\d+)\.rdb(\d)\.(.+)$", key):
            mid[f"RRDB_trunk.{match.group(1)}.RDB{match.group(2)}.{match.group(3)}"] = value
        else:
            prefix, _, kind = key.rpartition(".")
            mid[f"{names.get(prefix, prefix)}.{kind}"] = value
    x = _pixels(8, 8)
    assert torch.equal(_run(load_sr_model(mid), x), _run(load_sr_model(state), x))


def test_old_esrgan_x2_layout_counts_one_upsample_conv() -> None:
    state = _rrdb_state(num_upsample=1)
    old = {}
    for key, value in state.items():  # x2: model.3 upconv, model.5 HR conv, model.7 last
        prefix, _, kind = key.rpartition(".")
        name = {"conv_first": "model.0", "conv_body": "model.1.sub.2", "conv_up1": "model.3",
                "conv_hr": "model.5", "conv_last": "model.7"}.get(prefix)
        if name is None:
            block, rdb, conv = re.match(r"body\.(\d)\.rdb(\d)\.conv(\d)", prefix).groups()
            name = f"model.1.sub.{block}.RDB{rdb}.conv{conv}.0"
        old[f"{name}.{kind}"] = value
    model = load_sr_model(old)
    assert model.scale == 2
    assert _run(model, _pixels(6, 5)).shape == (1, 3, 10, 12)


def test_params_ema_wrapper_is_unwrapped_and_preferred() -> None:
    ema = _rrdb_state(seed=1)
    raw = _rrdb_state(seed=2)
    model = load_sr_model({"params": raw, "params_ema": ema})
    assert torch.equal(model.module.conv_first.weight, ema["conv_first.weight"])


def test_pixel_unshuffle_x2plus_layout() -> None:
    # Real-ESRGAN x2plus: a x4 body on a pixel-unshuffled input, so 12 input channels.
    model = load_sr_model({"params_ema": _rrdb_state(unshuffle=2)})
    assert model.scale == 2 and model.in_channels == 3
    assert _run(model, _pixels(9, 7)).shape == (1, 3, 14, 18)  # odd sides are padded


def test_srvgg_x2_doubles_both_sides(tmp_path: Path) -> None:
    model = load_sr_file(build_tiny_srvgg(tmp_path / "compact.pth", scale=2))
    assert (model.arch, model.scale) == ("srvgg", 2)
    assert isinstance(model.module.body[1], torch.nn.PReLU)
    assert _run(model, _pixels(11, 6)).shape == (1, 3, 12, 22)


def test_srvgg_without_prelu_weights_and_from_safetensors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    net = SRVGGNetCompact(3, 3, num_feat=8, num_conv=3, scale=4, act="leakyrelu")
    save_file(net.state_dict(), str(tmp_path / "compact.safetensors"))
    model = load_sr_file(tmp_path / "compact.safetensors")
    assert model.scale == 4
    assert sum(isinstance(layer, torch.nn.Conv2d) for layer in model.module.body) == 5
    x = _pixels(5, 4)
    assert torch.allclose(_run(model, x), net.eval()(x))


def test_unknown_state_dict_names_the_keys_seen() -> None:
    state = {"params": {"encoder.weight": torch.zeros(2, 2), "decoder.bias": torch.zeros(2)}}
    with pytest.raises(ValueError, match="unrecognised upscaler weights") as caught:
        load_sr_model(state)
    assert "encoder.weight" in str(caught.value)


def test_weights_that_do_not_fit_give_value_error() -> None:
    state = _rrdb_state()
    del state["conv_hr.bias"]
    with pytest.raises(ValueError, match="esrgan"):
        load_sr_model(state)


# -- backend ------------------------------------------------------------------------------


@pytest.fixture
def backend(tmp_path: Path) -> UpscalerBackend:
    path = build_tiny_upscaler(tmp_path / "tiny-x4.pth")
    return UpscalerBackend(_manifest(path), path, "cpu")


def test_test_pack_model_is_basicsr_params_ema(tmp_path: Path) -> None:
    path = build_tiny_upscaler(tmp_path / "tiny-x4.pth")
    state = torch.load(path, weights_only=True)
    assert list(state) == ["params_ema"] and "conv_first.weight" in state["params_ema"]


def test_backend_streams_tile_progress_then_the_image(backend: UpscalerBackend) -> None:
    events = list(backend.upscale(_image(40, 24), tile=16, overlap=4))
    progress, final = events[:-1], events[-1]
    assert progress == [{"tile": i, "total": 6} for i in range(1, 7)]
    assert (final["scale"], final["arch"]) == (4, "esrgan")
    assert final["image"].mode == "RGB" and final["image"].size == (160, 96)
    assert backend.memory_bytes == sum(p.numel() * 4 for p in backend.module.parameters())


def test_tiled_output_matches_untiled(backend: UpscalerBackend) -> None:
    image = _image(96, 80, seed=5)
    whole = list(backend.upscale(image, tile=0))[-1]["image"]
    tiled = list(backend.upscale(image, tile=32, overlap=8))[-1]["image"]
    whole_px, tiled_px = np.asarray(whole, dtype=int), np.asarray(tiled, dtype=int)
    assert whole_px.std() > 10  # the tiny test model draws a real picture, not a flat one
    assert np.abs(whole_px - tiled_px).max() <= 2
    assert np.abs(whole_px - tiled_px).mean() < 0.05


def test_rgba_input_keeps_alpha(backend: UpscalerBackend) -> None:
    image = _image(20, 12, mode="RGBA")
    result = list(backend.upscale(image, tile=8, overlap=2))[-1]["image"]
    assert result.mode == "RGBA" and result.size == (80, 48)
    assert result.getchannel("A").size == (80, 48)
    # Alpha comes from resizing the input's alpha, not from the net.
    expected = image.getchannel("A").resize((80, 48), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(result.getchannel("A")), np.asarray(expected))


def _upscale_with(store_root: Path, model_path: Path, registry, scale: float):
    from engine.executors.local import LocalExecutor
    from engine.files import FileStore
    from engine.graph import Graph
    from engine.models.local import LocalModels
    from engine.models.store import ModelStore

    store = ModelStore(store_root / "models")
    store.register(_manifest(model_path))
    models = LocalModels(store, 1024**3)
    files = FileStore(store_root / "files")
    buffer = io.BytesIO()
    _image(40, 24).save(buffer, format="PNG")
    picture = files.save(buffer.getvalue(), ".png")
    graph = Graph.model_validate({"name": "up", "nodes": {
        "load": {"type": "image.Load", "inputs": {"path": picture}},
        "up": {"type": "image.Upscale", "inputs": {"image": "${load.image}",
                                                   "scale": scale}},
    }, "outputs": {"image": "${up.image}", "method": "${up.method}"}})
    executor = LocalExecutor(registry, files=files, models=models)
    try:
        return executor.run(graph, timeout=60)
    finally:
        executor.close()
        models.close()


def test_an_upscaler_that_does_not_enlarge_is_refused_not_looped(tmp_path: Path, registry):
    path = build_tiny_srvgg(tmp_path / "x1.pth", scale=1)
    result = _upscale_with(tmp_path, path, registry, 2.0)
    assert result.status == "failed" and "does not enlarge" in result.error.message


def test_a_2x_upscaler_reaches_4x_in_two_passes(tmp_path: Path, registry):
    path = build_tiny_srvgg(tmp_path / "x2.pth", scale=2)
    result = _upscale_with(tmp_path, path, registry, 4.0)
    assert result.status == "success", result.error
    assert result.outputs["image"].size == (160, 96)
