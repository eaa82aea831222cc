"""What each image feature will use, computed from the model store (and the preferences
set through ``/v1/edit-models/preference``): a learned model when one is installed, else
the labelled classic fallback, else unavailable with the reason."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from engine.models.manifest import ModelManifest
from engine.models.store import ModelNotFoundError
from server.errors import ApiError
from server.state import AppState

CLASSIC_UPSCALE = "classic:lanczos+sharpen"
FACE_MODEL = "opencv-haar"
# Public upscalers HomePilot users know; the ESRGAN and compact layouts run here.
UPSCALE_CATALOG = [
    {"id": "4x-UltraSharp", "name": "4x UltraSharp", "filename": "4x-UltraSharp.pth",
     "description": "ESRGAN 4x, sharp detail for photos and renders"},
    {"id": "RealESRGAN_x4plus", "name": "Real-ESRGAN x4plus",
     "filename": "RealESRGAN_x4plus.pth",
     "description": "RRDBNet 4x trained on real-world degradations"},
    {"id": "realesr-general-x4v3", "name": "Real-ESRGAN general v3 (compact)",
     "filename": "realesr-general-x4v3.pth",
     "description": "SRVGG compact 4x, fast"},
]
FACE_CATALOG = [
    {"id": FACE_MODEL, "name": "OpenCV Haar faces + detail", "filename": "",
     "description": "face detector shipped inside OpenCV; detail and smoothing per face"},
]
MODES = ("upscale", "photo", "restore", "faces")


class Capability(BaseModel):
    available: bool
    reason: str | None = None
    endpoint: str
    model: str | None = None
    installed_models: list[str] | None = None


def _ids(models: list[ModelManifest]) -> list[str]:
    return [m.id for m in models]


def named_model(state: AppState, kind: str | tuple[str, ...], requested: str,
                what: str) -> str:
    """The id of the installed model of ``kind`` (or of any of several kinds) a request
    names by id or weights file name; 404 listing what is installed otherwise."""
    kinds = (kind,) if isinstance(kind, str) else kind
    models = [m for k in kinds for m in state.model_store.list(k)]
    for manifest in models:
        if requested in (manifest.id, manifest.path.rsplit("/", 1)[-1]):
            return manifest.id
    installed = ", ".join(m.id for m in models) or "none"
    raise ApiError(404, "model_not_found", f"{what} {requested!r} is not installed "
                   f"(installed: {installed})")


def upscaler(state: AppState, mode: str = "upscale") -> str | None:
    """The upscaler a mode uses: the preference when still installed, else the default."""
    preferred = state.preferences.get(mode)
    installed = _ids(state.model_store.list("upscaler"))
    if preferred in installed:
        return preferred
    try:
        return state.model_store.default("upscaler").id
    except ModelNotFoundError:
        return None


def painter(state: AppState) -> str | None:
    """The model inpainting runs on: a dedicated inpainting model, else a diffusion one."""
    for kind in ("inpaint", "diffusion"):
        try:
            return state.model_store.default(kind).id
        except ModelNotFoundError:
            continue
    return None


def capabilities(state: AppState) -> dict[str, Capability]:
    store = state.model_store
    upscalers = _ids(store.list("upscaler"))
    painters = _ids(store.list("inpaint")) + _ids(store.list("diffusion"))
    up = upscaler(state)
    paint = painter(state)
    no_painter = "no diffusion or inpainting model is installed; see `homepilot models`"
    fallback_note = None if up else "no upscaler installed: Lanczos + sharpening is used"

    def enhance(mode: str) -> Capability:
        chosen = upscaler(state, mode)
        return Capability(available=True, endpoint="/v1/enhance",
                          model=f"classic:{mode}" + (f"+{chosen}" if chosen else ""),
                          installed_models=upscalers, reason=fallback_note)

    features = {
        "enhance_photo": enhance("photo"),
        "enhance_restore": enhance("restore"),
        "enhance_faces": Capability(available=True, endpoint="/v1/enhance", model=FACE_MODEL,
                                    installed_models=[FACE_MODEL]),
        "upscale": Capability(available=True, endpoint="/v1/upscale",
                              model=up or CLASSIC_UPSCALE, installed_models=upscalers,
                              reason=fallback_note),
        "background_remove": Capability(available=True, endpoint="/v1/background",
                                        model="classic:grabcut", installed_models=[]),
        "background_replace": Capability(available=paint is not None,
                                         endpoint="/v1/background", model=paint,
                                         installed_models=painters,
                                         reason=None if paint else no_painter),
        "background_blur": Capability(available=True, endpoint="/v1/background",
                                      model="classic:grabcut+blur", installed_models=[]),
        "outpaint": Capability(available=True, endpoint="/v1/outpaint",
                               model=paint or "classic:opencv-telea",
                               installed_models=painters,
                               reason=None if paint else "no diffusion model installed: the "
                               "new area is filled from the edges (OpenCV)"),
        # Inpainting is /chat's edit with --mask (HomePilot names a /v1/edit it lacks too).
        "inpaint": Capability(available=paint is not None, endpoint="/chat", model=paint,
                              installed_models=painters, reason=None if paint else no_painter),
    }
    for feature, kind, endpoint in (("imagine", "diffusion", "/chat"),
                                    ("edit", "diffusion", "/chat"),
                                    ("animate", "video", "/chat")):
        models = _ids(store.list(kind))
        default = models and store.default(kind).id
        if feature == "animate" and not models:
            features[feature] = Capability(
                available=True, endpoint=endpoint, model="motion-renderer", installed_models=[],
                reason="no video model installed: a pan/zoom/parallax motion renderer is used")
        else:
            features[feature] = Capability(
                available=bool(models), endpoint=endpoint, model=default or None,
                installed_models=models, reason=None if models else no_painter)
    return features


def _entry(item: dict[str, Any], installed: set[str], default: str) -> dict[str, Any]:
    return {**item, "installed": item["id"] in installed, "is_default": item["id"] == default}


def edit_models(state: AppState) -> dict[str, Any]:
    upscalers = {m.id for m in state.model_store.list("upscaler")}
    catalog_ids = {c["id"] for c in UPSCALE_CATALOG}
    extra = [{"id": m.id, "name": m.id, "description": m.description,
              "filename": m.path.rsplit("/", 1)[-1]}
             for m in state.model_store.list("upscaler") if m.id not in catalog_ids]
    default = upscaler(state) or UPSCALE_CATALOG[0]["id"]
    available = [_entry(c, upscalers, default) for c in [*UPSCALE_CATALOG, *extra]]
    block = {"installed": sorted(upscalers), "available": available}
    return {
        "upscale": {**block, "selected": upscaler(state), "default": default},
        "enhance": {
            "photo": {**block, "selected": upscaler(state, "photo")},
            "restore": {**block, "selected": upscaler(state, "restore")},
            "faces": {"installed": [FACE_MODEL],
                      "available": [_entry(c, {FACE_MODEL}, FACE_MODEL)
                                    for c in FACE_CATALOG],
                      "selected": FACE_MODEL, "comfyui_ready": False,
                      "comfyui_status": "not needed: faces run on the built-in OpenCV "
                                        "detector"},
        },
    }


def set_preference(state: AppState, mode: str, model_id: str) -> dict[str, Any]:
    if mode not in MODES:
        raise ApiError(400, "invalid_mode", f"mode must be one of {', '.join(MODES)}")
    if mode == "faces":
        if model_id != FACE_MODEL:
            raise ApiError(400, "incompatible_model", f"{model_id} is not compatible with mode "
                           f"faces (available: {FACE_MODEL})")
    else:
        installed = {m.id for m in state.model_store.list("upscaler")}
        if model_id not in installed:
            known = {c["id"] for c in UPSCALE_CATALOG}
            if model_id in known:
                raise ApiError(400, "model_not_installed", f"Model {model_id} is not "
                               "installed; install it first (see `homepilot models`)")
            raise ApiError(404, "unknown_model", f"Unknown model {model_id!r}; installed "
                           f"upscalers: {', '.join(sorted(installed)) or 'none'}")
    state.preferences.set(mode, model_id)
    return {"success": True, "mode": mode, "model": model_id}
