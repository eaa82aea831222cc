"""Image to video: the tiny SVD test pipeline, the camera-move fallback, MP4/WebP files,
and both nodes run through the LocalExecutor."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.events import Event
from engine.executors.local import LocalExecutor
from engine.files import FileStore
from engine.models.local import LocalModels
from engine.models.manifest import ModelManifest, ModelResources
from engine.models.store import ModelStore
from engine.registry import Registry
from nodes.backends.motion import MOTIONS, fit_still, render_motion
from nodes.backends.videofile import encode_mp4, encode_webp, probe_video

TINY_SVD = "test-svd-tiny"


def picture(width: int = 96, height: int = 64) -> Image.Image:
    """A still with structure: a gradient sky, a ground band and a central subject."""
    ramp = np.linspace(40, 200, width, dtype=np.uint8)
    pixels = np.stack([np.tile(ramp, (height, 1))] * 3, axis=-1)
    pixels[..., 2] = 220
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, height * 3 // 4, width, height), fill=(30, 140, 40))
    draw.ellipse((width * 3 // 8, height // 4, width * 5 // 8, height * 7 // 8),
                 fill=(230, 200, 40), outline=(120, 60, 0), width=2)
    return image


def stripe(width: int = 120, height: int = 60) -> Image.Image:
    """Dark picture with one bright vertical stripe at its centre."""
    image = Image.new("RGB", (width, height), (10, 10, 10))
    ImageDraw.Draw(image).rectangle((width // 2 - 2, 0, width // 2 + 1, height),
                                    fill=(250, 250, 250))
    return image


def brightest_column(frame: Image.Image) -> int:
    return int(np.asarray(frame.convert("L"), dtype=np.float32).sum(axis=0).argmax())


def difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32))
                 .mean())


# -- the tiny SVD pipeline through its backend ---------------------------------------------


@pytest.fixture(scope="module")
def svd_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nodes.testpack.video import build_tiny_svd

    return build_tiny_svd(tmp_path_factory.mktemp("svd") / "weights")


def manifest(path: Path | str = "weights") -> ModelManifest:
    return ModelManifest(id=TINY_SVD, kind="video", format="diffusers", source="test-pack",
                         path=str(path), backend="nodes.backends.diffusers_video:VideoBackend",
                         test=True, resources=ModelResources(gpu=0.25, memory=32 * 1024**2))


@pytest.fixture(scope="module")
def backend(svd_weights: Path) -> Iterator[Any]:
    from nodes.backends.diffusers_video import VideoBackend

    loaded = VideoBackend(manifest(svd_weights), svd_weights, "cpu")
    yield loaded
    loaded.close()


def animate(backend: Any, **overrides: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    call = {"image": picture(), "frames": 6, "fps": 7, "steps": 2, "cfg": 2.5, "seed": 5,
            "width": 64, "height": 48, "motion": 1.0, **overrides}
    updates = list(backend.image_to_video(**call))
    return updates[:-1], updates[-1]


def test_the_tiny_pipeline_reloads_offline_as_svd(svd_weights: Path) -> None:
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(svd_weights))
    assert type(pipe).__name__ == "StableVideoDiffusionPipeline"
    size = sum(p.stat().st_size for p in svd_weights.rglob("*") if p.is_file())
    assert size < 16 * 1024**2


def test_backend_makes_the_requested_frames_and_reports_each_step(backend: Any) -> None:
    progress, final = animate(backend, frames=5, steps=3, width=64, height=48)
    assert progress == [{"step": i, "total": 3} for i in (1, 2, 3)]
    assert final["seed"] == 5 and len(final["frames"]) == 5
    assert {(f.mode, f.size) for f in final["frames"]} == {("RGB", (64, 48))}
    assert backend.memory_bytes > 0


def test_backend_same_seed_same_frames_and_random_seed_is_reported(backend: Any) -> None:
    _, first = animate(backend)
    _, again = animate(backend)
    assert [f.tobytes() for f in first["frames"]] == [f.tobytes() for f in again["frames"]]
    _, other = animate(backend, seed=6)
    assert first["frames"][0].tobytes() != other["frames"][0].tobytes()
    _, drawn = animate(backend, seed=-1)
    assert drawn["seed"] >= 0
    _, replay = animate(backend, seed=drawn["seed"])
    assert drawn["frames"][-1].tobytes() == replay["frames"][-1].tobytes()


def test_backend_refuses_sizes_that_are_not_multiples_of_8(backend: Any) -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        animate(backend, width=60)


# -- the camera-move renderer --------------------------------------------------------------


@pytest.mark.parametrize("motion", MOTIONS)
def test_every_motion_gives_the_frames_asked_for_the_same_each_time(motion: str) -> None:
    frames = render_motion(picture(), 7, 50, 30, motion)
    assert len(frames) == 7
    assert {(f.mode, f.size) for f in frames} == {("RGB", (50, 30))}
    again = render_motion(picture(), 7, 50, 30, motion)
    assert [f.tobytes() for f in frames] == [f.tobytes() for f in again]
    assert difference(frames[0], frames[-1]) > 1.0  # it moves


@pytest.mark.parametrize("motion", [m for m in MOTIONS if m != "zoom_out"])
def test_clips_start_on_the_fitted_still(motion: str) -> None:
    still = fit_still(picture(128, 96), 64, 40)  # a different aspect: centre-cropped
    first = render_motion(picture(128, 96), 5, 64, 40, motion)[0]
    assert difference(first, still) < 2.0


def test_zoom_in_enlarges_the_centre() -> None:
    frames = render_motion(stripe(), 5, 120, 60, "zoom_in", strength=2.0)
    width = [int((np.asarray(f.convert("L")) > 128).any(axis=0).sum()) for f in frames]
    assert width[-1] > width[0]
    assert difference(frames[0], frames[-1]) > 1.0


def test_pan_right_slides_the_content_left() -> None:
    frames = render_motion(stripe(), 9, 120, 60, "pan_right")
    columns = [brightest_column(f) for f in frames]
    assert columns[0] == pytest.approx(60, abs=2)
    assert columns[-1] < columns[0] - 5
    assert columns == sorted(columns, reverse=True)  # steadily, never back
    assert brightest_column(render_motion(stripe(), 9, 120, 60, "pan_left")[-1]) > 65


def test_unknown_motion_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of"):
        render_motion(picture(), 3, 32, 32, "spin")


# -- video files ---------------------------------------------------------------------------


def test_mp4_reads_back_with_every_frame_at_its_size() -> None:
    frames = render_motion(picture(), 9, 64, 48, "zoom_in")
    info = probe_video(encode_mp4(frames, 8))
    assert (info.frames, info.width, info.height) == (9, 64, 48)
    assert info.fps == pytest.approx(8)


def test_mp4_pads_odd_sides_to_even() -> None:
    frames = render_motion(picture(), 3, 33, 21, "zoom_in")
    info = probe_video(encode_mp4(frames, 5))
    assert (info.frames, info.width, info.height) == (3, 34, 22)


def test_animated_webp_holds_every_frame_and_loops() -> None:
    frames = render_motion(picture(), 6, 40, 24, "pan_left")
    with Image.open(io.BytesIO(encode_webp(frames, 12))) as webp:
        assert (webp.n_frames, webp.size) == (6, (40, 24))
        assert webp.info.get("loop", 0) == 0


def test_frames_of_different_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="same size"):
        encode_mp4([Image.new("RGB", (8, 8)), Image.new("RGB", (16, 8))], 5)


# -- the nodes through the LocalExecutor ---------------------------------------------------


@pytest.fixture(scope="module")
def video_registry() -> Registry:
    import nodes.image
    import nodes.video

    registry = Registry()
    for module in (nodes.image, nodes.video):
        registry.register_module(module)
    return registry


def run_clip(registry: Registry, models: LocalModels, files: FileStore, still: Path,
             **settings: Any) -> tuple[Any, list[Event]]:
    from engine.graph import Graph

    graph = Graph.model_validate({"name": "clip", "nodes": {
        "load": {"type": "image.Load", "inputs": {"path": str(still)}},
        "animate": {"type": "video.ImageToVideo",
                    "inputs": {"image": "${load.image}", **settings}},
        "save": {"type": "video.Save",
                 "inputs": {"frames": "${animate.frames}", "fps": "${animate.fps}"}},
    }, "outputs": {"video": "${save.video}", "webp": "${save.webp}",
                   "frames": "${save.frames}", "renderer": "${animate.renderer}",
                   "seed": "${animate.seed}"}})
    executor = LocalExecutor(registry, files=files, models=models)
    events: list[Event] = []
    try:
        result = executor.run(graph, listener=events.append, timeout=120)
    finally:
        executor.close()
    assert result.status == "success", result.error
    return result, events


def progress_of(events: list[Event], node_id: str) -> list[float]:
    return [e.data["value"] for e in events if e.type == "node_progress" and
            e.node_id == node_id]


def test_without_a_video_model_the_nodes_render_a_camera_move(
        video_registry: Registry, tmp_path: Path,
        input_dir: Path) -> None:
    still = input_dir / "still.png"
    picture(100, 60).save(still)
    files = FileStore(tmp_path / "files")
    models = LocalModels(ModelStore(tmp_path / "no-models"), 1024**3)
    result, events = run_clip(video_registry, models, files, still, frames=6, fps=9,
                              motion="pan_right")
    outputs = result.outputs
    assert outputs["renderer"] == "motion:pan_right" and outputs["frames"] == 6
    info = probe_video(files.read(outputs["video"]))
    assert (info.frames, info.width, info.height, info.fps) == (6, 96, 56, 9)
    with Image.open(files.path(outputs["webp"])) as webp:
        assert webp.n_frames == 6
    assert progress_of(events, "animate") == [1, 2, 3, 4, 5, 6]
    shown = result.ui["save"]
    assert shown["videos"][0]["filename"] == outputs["video"] and shown["animated"] == [True]


def test_with_the_tiny_svd_the_nodes_stream_its_steps(
        video_registry: Registry, svd_weights: Path, tmp_path: Path,
        input_dir: Path) -> None:
    store = ModelStore(tmp_path / "models")
    store.register(manifest(svd_weights))
    still = input_dir / "still.png"
    picture().save(still)
    files = FileStore(tmp_path / "files")
    models = LocalModels(store, 1024**3)
    try:
        result, events = run_clip(video_registry, models, files, still, frames=4, steps=2,
                                  width=64, height=48, seed=-1)
    finally:
        models.close()
    outputs = result.outputs
    assert outputs["renderer"] == TINY_SVD and outputs["seed"] >= 0
    info = probe_video(files.read(outputs["video"]))
    assert (info.frames, info.width, info.height) == (4, 64, 48)
    assert progress_of(events, "animate")[-1] == 2


def test_a_named_video_model_that_is_missing_is_an_error(
        video_registry: Registry, tmp_path: Path,
        input_dir: Path) -> None:
    from engine.graph import Graph

    still = input_dir / "still.png"
    picture().save(still)
    graph = Graph.model_validate({"name": "clip", "nodes": {
        "load": {"type": "image.Load", "inputs": {"path": str(still)}},
        "animate": {"type": "video.ImageToVideo",
                    "inputs": {"image": "${load.image}", "model": "no-such-model"}},
    }, "outputs": {"renderer": "${animate.renderer}"}})
    executor = LocalExecutor(video_registry, files=FileStore(tmp_path / "files"),
                             models=LocalModels(ModelStore(tmp_path / "none"), 1024**3))
    try:
        result = executor.run(graph, timeout=60)
    finally:
        executor.close()
    assert result.status == "failed" and "no-such-model" in str(result.error)
