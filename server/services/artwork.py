"""The media modes of POST /chat: imagine, edit and animate, each a graph run.

HomePilot's wire shapes are kept (``media`` as the contract lists it); what HomePilot
reports as a 200 with an error in ``text`` is a 4xx/5xx with ``{ok:false, code, message}``
here. Sources may be an http(s) URL in the message (HomePilot's way), a ``/files/...``
URL or an upload id.
"""

from __future__ import annotations

import re
from typing import Any

from server.errors import ApiError
from server.services import presets
from server.services.capabilities import named_model
from server.services.chat import ChatIn
from server.services.graphs import load_named
from server.services.media import Source, file_url, load_source
from server.services.runs import finish
from server.state import AppState

_SOURCE = re.compile(r"(https?://\S+|/files/f_[0-9a-f]{20}(?:\.[a-z0-9]{1,8})?|"
                     r"\bf_[0-9a-f]{20}(?:\.[a-z0-9]{1,8})?)")
_MODE_WORD = re.compile(r"^\s*/?(imagine|edit|inpaint|animate)\b[:,]?\s*", re.I)
# HomePilot's edit flags with their defaults; controlnet and LoRA are refused (not built).
EDIT_DEFAULTS: dict[str, Any] = {"mode": "", "steps": 30, "cfg": 5.5, "denoise": 0.55,
                                 "seed": -1, "sampler": "euler", "scheduler": "normal",
                                 "ckpt": "", "mask": ""}
_UNSUPPORTED = {"cn", "cn-strength", "controlnet", "lora"}
MAX_FRAMES, MAX_VIDEO_SIDE = 64, 1536  # video.ImageToVideo's frames; ChatIn's vidWidth
MOTIONS = ("zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down", "parallax")


def _diffusion_model(state: AppState, requested: str | None) -> str:
    """The installed diffusion model a request names (id or checkpoint file name)."""
    models = state.model_store.list("diffusion")
    if not models:
        raise ApiError(503, "no_models", "No models are downloaded yet: install an image "
                       "model (or `homepilot models install-test-pack` for a tiny test one)")
    if not requested:
        return ""
    return named_model(state, "diffusion", requested, "image model")


def check_settings(state: AppState, values: dict[str, Any]) -> None:
    """Sampling settings checked against image.ImageToImage's own inputs (ranges, sampler
    names, its check) before anything is fetched or stored; 400 ``invalid_flag``."""
    definition = state.registry.get("image.ImageToImage")
    specs = {i.name: i for i in definition.spec.inputs} if definition else {}
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None:
            continue
        if spec.choices is not None and value not in spec.choices:
            raise ApiError(400, "invalid_flag", f"--{name} {value!r} is not one of "
                           + ", ".join(map(str, spec.choices)))
        low = spec.min if spec.min is not None else float("-inf")
        high = spec.max if spec.max is not None else float("inf")
        if isinstance(value, (int, float)) and not low <= value <= high:
            raise ApiError(400, "invalid_flag", f"--{name} must be between {low:g} and "
                           f"{high:g} (got {value})")
    check = definition.validate_inputs if definition else None
    for name, message in (check(values) if check else []):  # the node's own rules
        raise ApiError(400, "invalid_flag", f"--{name}: {message}" if name else message)


def split_source(message: str) -> tuple[str | None, str]:
    """(the first picture reference in the message, the message without it)."""
    match = _SOURCE.search(message)
    if match is None:
        return None, message.strip()
    rest = (message[:match.start()] + message[match.end():]).strip()
    return match.group(0).rstrip(".,;)"), rest


def parse_flags(text: str) -> tuple[str, dict[str, Any]]:
    """(the instruction, the edit settings) from ``... --steps 12 --mask URL``."""
    settings = dict(EDIT_DEFAULTS)
    words, tokens = [], text.split()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--") or len(token) < 3:
            words.append(token)
            index += 1
            continue
        name = token[2:].lower()
        value = tokens[index + 1] if index + 1 < len(tokens) and \
            not tokens[index + 1].startswith("--") else None
        index += 2 if value is not None else 1
        if name in _UNSUPPORTED:
            raise ApiError(400, "unsupported_option", f"--{name} (ControlNet/LoRA) is not "
                           "supported by this server's edit graphs")
        if name not in EDIT_DEFAULTS:
            raise ApiError(400, "invalid_flag", f"unknown edit flag --{name}; known: "
                           + ", ".join(f"--{n}" for n in EDIT_DEFAULTS))
        if value is None:
            raise ApiError(400, "invalid_flag", f"--{name} needs a value")
        default = EDIT_DEFAULTS[name]
        try:
            settings[name] = type(default)(value) if not isinstance(default, str) else value
        except ValueError:
            raise ApiError(400, "invalid_flag", f"--{name} wants a "
                           f"{type(default).__name__}, got {value!r}") from None
    return " ".join(words), settings


def _image_settings(state: AppState, body: ChatIn, model: str) -> dict[str, Any]:
    """Size, steps and guidance from ``imgPreset`` and ``imgAspectRatio`` for the model
    that will draw (the default one when none is named): its architecture's training
    sizes and tuned values. ``imgWidth``... count only with ``imgPreset: "custom"``."""
    manifest = state.model_store.resolve("diffusion", model)
    arch = presets.architecture(manifest, state.model_store.weights(manifest))
    preset = "med" if body.imgPreset in (None, "custom") else body.imgPreset
    values = presets.image_preset(arch, preset, body.imgAspectRatio)["values"]
    custom = body.imgPreset in (None, "custom")

    def pick(given: Any, preset: Any) -> Any:
        return given if custom and given is not None else preset

    seed = body.imgSeed if body.imgSeed not in (None, 0) else -1
    return {"width": pick(body.imgWidth, values["width"]) // 8 * 8,
            "height": pick(body.imgHeight, values["height"]) // 8 * 8,
            "steps": pick(body.imgSteps, values["steps"]),
            "cfg": float(pick(body.imgCfg, values["cfg"])), "seed": seed,
            "architecture": arch, "preset": body.imgPreset or "med",
            "aspect_ratio": body.imgAspectRatio or "1:1"}


def refinement(body: ChatIn) -> dict[str, Any]:
    """The imagine graph's refine inputs from the request: on unless
    ``promptRefinement`` is false; the chat provider it names (``provider_*``, else the
    legacy ``ollama_*``/``llm_*`` fields) is tried before the local model."""
    def field(*names: str) -> str:
        # The legacy names are not ChatIn fields: pydantic keeps them as extra attributes.
        for name in names:
            value = getattr(body, name, None)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return ""

    provider = body.provider or ""
    ollama = provider == "ollama" or (not provider and field("ollama_base_url"))
    base = field("provider_base_url", *(("ollama_base_url",) if ollama else ()),
                 "llm_base_url")
    model = field("provider_model", *(("ollama_model",) if ollama else ()), "llm_model")
    return {"refine": body.promptRefinement, "refine_base_url": base, "refine_model": model,
            "refine_provider": "ollama" if ollama else ("openai_compat" if base else ""),
            "refine_safe": not body.nsfwMode}


async def imagine(state: AppState, body: ChatIn, host: str | None) -> tuple[str, dict]:
    model = _diffusion_model(state, body.imgModel)
    prompt = _MODE_WORD.sub("", body.message).strip() or body.message
    settings = _image_settings(state, body, model)
    sizing = {k: settings.pop(k) for k in ("architecture", "preset", "aspect_ratio")}
    refined: dict[str, Any] = {"final_prompt": prompt, "refiner": "none", "refine_note": ""}
    if body.imgReference:  # img2img from a reference: HomePilot's denoise mapping
        denoise = round(0.15 + 0.70 * body.imgRefStrength, 3)
        check_settings(state, {"steps": settings["steps"], "denoise": denoise})
        reference = await load_source(state, body.imgReference, host)
        out = await finish(state.runs, load_named(state.graphs_dir, "edit"), {
            "image": await reference.keep(state), "prompt": prompt, "denoise": denoise,
            "steps": settings["steps"], "cfg": settings["cfg"], "seed": settings["seed"],
            "model": model}, "imagine")
        seeds = [out["seed"]]
        # The picture keeps the reference's size (one picture: imgBatchSize does not apply).
        settings["width"], settings["height"] = reference.size
    else:
        out = await finish(state.runs, load_named(state.graphs_dir, "imagine"), {
            "prompt": prompt, **settings, "batch_size": body.imgBatchSize, "model": model,
            **refinement(body)}, "imagine")
        seeds = out["seeds"]
        refined = {k: out[k] for k in refined}
    media = {"images": [file_url(f) for f in out["files"]],
             "final_prompt": refined["final_prompt"], "seed": out["seed"], "seeds": seeds,
             "width": settings["width"], "height": settings["height"],
             "steps": settings["steps"], "cfg": settings["cfg"], "model": out["model"],
             **sizing, "refiner": refined["refiner"]}
    text = "Here you go."
    if refined["refine_note"]:
        media["refine_note"] = refined["refine_note"]
        text += f" (Prompt refinement: {refined['refine_note']}.)"
    return text, media


async def edit(state: AppState, body: ChatIn, host: str | None,
               source: Source | None = None) -> tuple[str, dict]:
    """``source``: a picture already loaded (an edit session's new upload), used instead
    of one named in the message; it is stored only once the request has been checked."""
    source_ref, rest = split_source(body.message) if source is None else (None, body.message)
    if source_ref is None and source is None:
        raise ApiError(400, "image_required", "To edit, upload an image first (or paste an "
                       "image URL).")
    instruction, settings = parse_flags(_MODE_WORD.sub("", rest))
    if not instruction:
        raise ApiError(400, "instruction_required", "say how the picture should change, "
                       "e.g. 'edit <url> make the sky blue'")
    check_settings(state, {k: settings[k] for k in ("steps", "cfg", "denoise", "seed",
                                                     "sampler", "scheduler")})
    requested = settings["ckpt"] or body.imgModel
    if settings["mask"]:  # inpainting: a dedicated inpainting model unless one is named
        _diffusion_model(state, None)
        model = named_model(state, ("inpaint", "diffusion"), requested, "image model") \
            if requested else ""
    else:
        model = _diffusion_model(state, requested)
    loaded = source or await load_source(state, source_ref or "", host)
    mask = await load_source(state, settings["mask"], host) if settings["mask"] else None
    source_id = await loaded.keep(state)  # every check has passed: now it may be stored
    inputs = {"image": source_id, "prompt": instruction, "steps": settings["steps"],
              "cfg": settings["cfg"], "denoise": settings["denoise"], "seed": settings["seed"],
              "sampler": settings["sampler"], "scheduler": settings["scheduler"], "model": model}
    mask_url = None
    if mask is not None:
        mask_id = await mask.keep(state)
        mask_url = file_url(mask_id)
        out = await finish(state.runs, load_named(state.graphs_dir, "inpaint"),
                           {**inputs, "mask": mask_id}, "edit")
    else:
        out = await finish(state.runs, load_named(state.graphs_dir, "edit"), inputs, "edit")
    edit_settings = {
        "mode": settings["mode"] or ("inpaint" if mask_url else "img2img"),
        "steps": settings["steps"], "cfg": settings["cfg"], "denoise": settings["denoise"],
        "seed": out["seed"], "sampler_name": settings["sampler"],
        "scheduler": settings["scheduler"], "ckpt_name": out["model"],
        "controlnet_name": None, "controlnet_strength": None, "cn_enabled": False,
        "mask_url": mask_url, "loras": []}
    return "Done.", {"images": [file_url(f) for f in out["files"]],
                     "edit_settings": edit_settings, "source_image": file_url(source_id)}


def _video_family(model: str | None) -> str:
    name = (model or "").lower()
    return next((f for f in presets.VIDEO_MODELS if f in name), "svd")


def _video_model(state: AppState, requested: str | None) -> str:
    """An installed video model the request names, or "" for the default (the motion
    renderer when none is installed). Family names (svd, ltx, ...) pick the default."""
    if not requested or requested.lower() in presets.VIDEO_MODELS:
        return ""
    return named_model(state, "video", requested, "video model")


async def animate(state: AppState, body: ChatIn, host: str | None) -> tuple[str, dict]:
    source_ref, rest = split_source(body.message)
    prompt = _MODE_WORD.sub("", rest).strip()
    motion = (body.vidMotion or "zoom_in").lower()
    if motion not in MOTIONS:
        raise ApiError(400, "invalid_motion", f"vidMotion must be one of {', '.join(MOTIONS)}")
    model = _video_model(state, body.vidModel)
    values = presets.video_preset(_video_family(body.vidModel), body.vidPreset,
                                  body.vidAspectRatio)["values"]
    fps = body.vidFps or values["fps"]
    frames = max(2, min(body.vidSeconds * fps if body.vidSeconds else values["frames"],
                        MAX_FRAMES))
    width = min(body.vidWidth or body.imgWidth or values["width"], MAX_VIDEO_SIDE) // 8 * 8
    height = min(body.vidHeight or body.imgHeight or values["height"], MAX_VIDEO_SIDE) // 8 * 8
    media: dict[str, Any] = {}
    if source_ref is None:  # HomePilot draws a starter picture at the video's size
        try:
            image_model = _diffusion_model(state, body.imgModel)
        except ApiError as exc:
            raise ApiError(exc.status, exc.code,
                           f"Failed to generate starter image: {exc.message}") from None
        started = await finish(state.runs, load_named(state.graphs_dir, "imagine"), {
            "prompt": prompt or body.message, "width": width, "height": height,
            "steps": body.imgSteps or 20, "seed": -1, "model": image_model}, "starter image")
        source = started["files"][0]
        media["auto_generated_image"] = file_url(source)
        media["auto_generated_meta"] = {"prompt": prompt or body.message,
                                        "seed": started["seed"], "width": width,
                                        "height": height, "model": started["model"]}
    else:
        source = await (await load_source(state, source_ref, host)).keep(state)
    steps = body.vidSteps or values["steps"]
    cfg = body.vidCfg if body.vidCfg is not None else values["cfg"]
    out = await finish(state.runs, load_named(state.graphs_dir, "animate"), {
        "image": source, "frames": frames, "fps": fps, "width": width, "height": height,
        "steps": steps, "cfg": cfg, "seed": body.vidSeed if body.vidSeed is not None else -1,
        "motion": motion, "model": model}, "animate")
    media.update({
        "video_url": file_url(out["video"]), "webp_url": file_url(out["webp"]),
        "seed": out["seed"], "model": out["renderer"],
        "preset": body.vidPreset or "medium", "duration": round(out["frames"] / out["fps"], 3),
        "fps": out["fps"], "frames": out["frames"], "steps": steps, "cfg": cfg,
        "denoise": None,  # not a setting of image to video (media.ignored says so if set)
        "width": out["width"], "height": out["height"], "motion": motion, "prompt": prompt,
        "final_prompt": prompt, "negative_prompt": None,
        "source_image": file_url(source)})
    text = "Generated image and animated it!" if "auto_generated_image" in media else \
        "Here's your animated video!"
    return text, media


MODES = {"imagine": imagine, "edit": edit, "animate": animate}
