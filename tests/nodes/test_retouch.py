"""The classic retouch functions, on synthetic pictures drawn here."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from nodes.backends import retouch

SIZE = 256


def _disc_scene(size: int = SIZE) -> tuple[Image.Image, np.ndarray]:
    """A bright disc on a textured dark background, and the disc's boolean mask."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:size, :size]
    pixels = np.clip(rng.normal(45, 18, (size, size, 3)), 0, 255)
    pixels += 10 * np.sin(xx / 5.0)[..., None]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.28 * size) ** 2
    pixels[disc] = (235, 190, 70)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), disc


def _smooth_scene(size: int = SIZE) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    pixels = np.dstack([60 + xx * 0.5, 90 + yy * 0.4, 140 + 0 * xx])
    cv2.rectangle(pixels, (60, 80), (180, 160), (200, 120, 60), -1)
    return np.clip(cv2.GaussianBlur(pixels, (0, 0), 2), 0, 255).astype(np.uint8)


def _face_scene(scale: float = 1.0) -> Image.Image:
    """A flat drawn face (hair, skin oval, eyes, brows, nose shadow, mouth)."""
    size = int(256 * scale) + 40
    cx = cy = int(128 * scale) + 20
    pixels = np.full((size, size, 3), (90, 110, 140), np.uint8)

    def oval(dx: float, dy: float, ax: float, ay: float, colour: tuple[int, int, int]) -> None:
        cv2.ellipse(pixels, (int(cx + dx * scale), int(cy + dy * scale)),
                    (int(ax * scale), int(ay * scale)), 0, 0, 360, colour, -1, cv2.LINE_AA)

    oval(0, -10, 48, 64, (70, 50, 40))
    oval(0, 5, 42, 56, (205, 165, 135))
    oval(-17, -8, 10, 4, (40, 30, 30))
    oval(17, -8, 10, 4, (40, 30, 30))
    for x0, y0, x1, y1 in ((-27, -20, -8, -21), (8, -21, 27, -20)):
        cv2.line(pixels, (int(cx + x0 * scale), int(cy + y0 * scale)),
                 (int(cx + x1 * scale), int(cy + y1 * scale)), (70, 50, 40),
                 max(1, int(4 * scale)), cv2.LINE_AA)
    oval(0, 12, 5, 3, (150, 110, 90))
    oval(0, 30, 14, 4, (150, 70, 70))
    return Image.fromarray(cv2.GaussianBlur(pixels, (0, 0), 1.2 * scale))


def _local_variance(pixels: np.ndarray) -> float:
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


needs_faces = pytest.mark.skipif(retouch.face_model() is None,
                                 reason="this OpenCV build ships no Haar face cascade")


# -- upscale ----------------------------------------------------------------------------

def test_lanczos_upscale_doubles_rgb():
    image, _ = _disc_scene(100)
    out = retouch.lanczos_upscale(image.crop((0, 0, 100, 60)), 2)
    assert out.mode == "RGB" and out.size == (200, 120)


def test_lanczos_upscale_keeps_alpha():
    rgb = np.array(_disc_scene(64)[0])
    alpha = np.zeros((64, 64), np.uint8)
    alpha[:, 32:] = 255
    out = retouch.lanczos_upscale(Image.fromarray(np.dstack([rgb, alpha])), 2)
    assert out.mode == "RGBA" and out.size == (128, 128)
    out_alpha = np.array(out.getchannel("A"))
    assert out_alpha[:, :56].max() == 0 and out_alpha[:, 72:].min() == 255


def test_lanczos_upscale_downscales_and_rejects_nonsense():
    image, _ = _disc_scene(100)
    assert retouch.lanczos_upscale(image, 0.5).size == (50, 50)
    with pytest.raises(ValueError):
        retouch.lanczos_upscale(image, 0)


# -- enhance and restore ----------------------------------------------------------------

def test_enhance_photo_raises_low_contrast():
    flat = (_smooth_scene().astype(np.float32) * 0.3 + 90).astype(np.uint8)
    out = retouch.enhance_photo(Image.fromarray(flat))
    assert out.mode == "RGB" and out.size == (SIZE, SIZE)
    before = np.array(Image.fromarray(flat).convert("L")).std()
    assert np.array(out.convert("L")).std() > 1.2 * before


def test_enhance_photo_keeps_alpha():
    rgb = _smooth_scene(64)
    alpha = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    out = retouch.enhance_photo(Image.fromarray(np.dstack([rgb, alpha])))
    assert out.mode == "RGBA" and out.size == (64, 64)
    assert np.array_equal(np.array(out.getchannel("A")), alpha)


def test_restore_removes_salt_and_pepper():
    clean = _smooth_scene()
    noisy = clean.copy()
    rng = np.random.default_rng(3)
    specks = rng.random(clean.shape[:2])
    noisy[specks < 0.02] = 0
    noisy[specks > 0.98] = 255
    out = retouch.restore(Image.fromarray(noisy))
    assert out.mode == "RGB" and out.size == (SIZE, SIZE)
    assert _rmse(np.array(out), clean) < 0.7 * _rmse(noisy, clean)
    reference = np.array(retouch.restore(Image.fromarray(clean)))  # restore also enhances
    assert _rmse(np.array(out), reference) < 0.25 * _rmse(noisy, clean)


def test_restore_mends_a_scratch():
    clean = _smooth_scene()
    scratched = clean.copy()
    cv2.line(scratched, (10, 20), (240, 200), (250, 250, 250), 2)
    out = np.array(retouch.restore(Image.fromarray(scratched)))
    reference = np.array(retouch.restore(Image.fromarray(clean)))  # restore also enhances
    assert _rmse(out, reference) < 0.4 * _rmse(scratched, clean)


# -- faces ------------------------------------------------------------------------------

def test_enhance_faces_without_faces_changes_nothing():
    image, _ = _disc_scene()
    out, count = retouch.enhance_faces(image)
    assert count == 0
    assert out.mode == image.mode and out.tobytes() == image.tobytes()


@needs_faces
@pytest.mark.parametrize("scale", [0.8, 1.0, 1.5])
def test_find_faces_finds_a_drawn_face(scale: float):
    image = _face_scene(scale)
    faces = retouch.find_faces(image)
    assert len(faces) == 1
    x, y, w, h = faces[0]
    centre = image.width / 2
    assert abs(x + w / 2 - centre) < 0.15 * w and abs(y + h / 2 - centre) < 0.25 * h


@needs_faces
def test_find_faces_sorted_and_separate():
    face = np.array(_face_scene())
    image = Image.fromarray(np.concatenate([face, face], axis=1))
    faces = retouch.find_faces(image)
    assert len(faces) == 2 and faces == sorted(faces)
    assert faces[1][0] >= face.shape[1]
    assert retouch.find_faces(_disc_scene()[0]) == []


@needs_faces
def test_enhance_faces_retouches_inside_the_face_only():
    image = _face_scene()
    out, count = retouch.enhance_faces(image)
    assert count == 1 and out.size == image.size and out.mode == "RGB"
    before, after = np.array(image).astype(int), np.array(out).astype(int)
    assert np.abs(before - after)[100:180, 100:180].mean() > 0.5
    assert np.array_equal(before[:20, :20], after[:20, :20])


# -- background -------------------------------------------------------------------------

def test_foreground_mask_finds_the_disc():
    image, disc = _disc_scene()
    mask = retouch.foreground_mask(image)
    assert mask.mode == "L" and mask.size == image.size
    values = np.array(mask)
    assert (values[disc] > 127).mean() > 0.9
    for corner in (values[:20, :20], values[:20, -20:], values[-20:, :20], values[-20:, -20:]):
        assert corner.max() < 128
    assert np.array_equal(values, np.array(retouch.foreground_mask(image)))  # deterministic


def test_foreground_mask_honours_existing_alpha():
    image, disc = _disc_scene()
    alpha = np.zeros(disc.shape, np.uint8)
    alpha[40:-40, 30:-30] = 255  # a transparent frame around the picture
    values = np.array(retouch.foreground_mask(Image.fromarray(np.dstack([np.array(image), alpha]))))
    assert values[alpha == 0].max() == 0
    assert (values[disc] > 127).mean() > 0.9
    assert values[45:55, 35:45].max() < 128  # opaque background stays background


def test_foreground_mask_of_a_cutout_keeps_the_cutout():
    image, disc = _disc_scene()
    alpha = np.where(disc, 255, 0).astype(np.uint8)
    values = np.array(retouch.foreground_mask(Image.fromarray(np.dstack([np.array(image), alpha]))))
    assert values[~disc].max() == 0
    assert (values[disc] > 127).mean() > 0.9


def test_foreground_mask_of_a_large_picture_is_full_size():
    image, disc = _disc_scene(1024)
    values = np.array(retouch.foreground_mask(image))
    assert values.shape == (1024, 1024) and (values[disc] > 127).mean() > 0.9


def test_remove_background_sets_alpha_from_the_mask():
    image, _ = _disc_scene()
    out = retouch.remove_background(image)
    assert out.mode == "RGBA" and out.size == image.size
    assert np.array_equal(np.array(out.getchannel("A")), np.array(retouch.foreground_mask(image)))
    assert np.array_equal(np.array(out.convert("RGB")), np.array(image))


def test_blur_background_blurs_only_the_background():
    image, disc = _disc_scene()
    out = retouch.blur_background(image, 20)
    assert out.mode == "RGB" and out.size == image.size
    before, after = np.array(image), np.array(out)
    core = cv2.erode(disc.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    assert np.abs(before[core].astype(int) - after[core].astype(int)).mean() < 2
    corner = (slice(0, 48), slice(0, 48))
    assert _local_variance(after[corner]) < 0.2 * _local_variance(before[corner])


def test_blur_background_clamps_strength_and_drops_alpha():
    image, _ = _disc_scene(96)
    rgba = image.convert("RGBA")
    low = retouch.blur_background(rgba, 1)
    assert low.mode == "RGB"
    assert low.tobytes() == retouch.blur_background(image, 5).tobytes()


# -- outpaint ---------------------------------------------------------------------------

def test_extend_canvas_places_original_and_marks_new_area():
    image, _ = _disc_scene(64)
    canvas, mask = retouch.extend_canvas(image, 10, 20, 30, 40)
    assert canvas.mode == "RGB" and mask.mode == "L"
    assert canvas.size == mask.size == (94, 134)
    values = np.array(mask)
    assert values[30:94, 10:74].max() == 0
    assert values.sum() == 255 * (94 * 134 - 64 * 64)
    assert np.array_equal(np.array(canvas)[30:94, 10:74], np.array(image))


def test_outpaint_fill_keeps_original_bit_exact_and_fills_with_texture():
    image, _ = _disc_scene(128)
    out = retouch.outpaint_fill(image, 64, 32, 0, 96)
    assert out.mode == "RGB" and out.size == (224, 224)
    pixels = np.array(out)
    assert np.array_equal(pixels[0:128, 64:192], np.array(image))
    strips = (pixels[0:128, 40:64], pixels[0:128, 192:216], pixels[128:152, 64:192])
    for strip in strips:
        assert strip.astype(float).std(axis=(0, 1)).min() > 3  # textured, not flat
        assert abs(float(strip.mean()) - float(np.array(image)[:, :8].mean())) < 40


def test_outpaint_fill_large_extension_and_alpha_input():
    image, _ = _disc_scene(48)
    rgba = np.dstack([np.array(image), np.full((48, 48), 100, np.uint8)])
    out = retouch.outpaint_fill(Image.fromarray(rgba), 1024, 0, 0, 1024)
    assert out.mode == "RGB" and out.size == (1072, 1072)
    pixels = np.array(out)
    assert np.array_equal(pixels[0:48, 1024:1072], np.array(image))
    assert pixels[48:, :].astype(float).std() > 1


def test_outpaint_fill_limits():
    image, _ = _disc_scene(32)
    assert retouch.outpaint_fill(image, 0, 0, 0, 0).tobytes() == image.tobytes()
    with pytest.raises(ValueError):
        retouch.outpaint_fill(image, retouch.MAX_EXTEND + 1, 0, 0, 0)
    with pytest.raises(ValueError):
        retouch.extend_canvas(image, -1, 0, 0, 0)


# -- odd inputs -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "LA"])
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (40, 3)])
def test_tiny_and_odd_mode_images(mode: str, size: tuple[int, int]):
    image = Image.new(mode, size)
    has_alpha = mode in ("RGBA", "LA")
    for out in (retouch.enhance_photo(image), retouch.restore(image)):
        assert out.size == size and out.mode == ("RGBA" if has_alpha else "RGB")
    assert retouch.lanczos_upscale(image, 2).size == (size[0] * 2, size[1] * 2)
    assert retouch.foreground_mask(image).size == size
    assert retouch.remove_background(image).mode == "RGBA"
    assert retouch.blur_background(image, 10).mode == "RGB"
    assert retouch.outpaint_fill(image, 3, 0, 2, 5).size == (size[0] + 3, size[1] + 7)
    assert retouch.enhance_faces(image)[1] == 0
