"""Stable Video Diffusion's parts as ComfyUI's img2vid nodes use them, on the video host.

ImageOnlyCheckpointLoader hands out handles naming the resident SVD pipeline; the work
runs here: SVD_img2vid_Conditioning's CLIP-vision embedding and init-image latent,
KSampler's sampling and VAEDecode's temporal decode. ComfyUI's conventions hold as for
SD (nodes.backends.parts): latents cross raw, the frames of one clip are the batch.

The sampling is ComfyUI's loop (nodes.backends.ksampler) on SVD's model: v-prediction
on continuous EDM noise levels (ComfyUI's ModelSamplingContinuousEDM, σ in
[0.002, 700]), the raw init-image latent concatenated to every frame's input, and the
added time ids (fps − 1, motion bucket, augmentation level) from the conditioning.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nodes.backends.ksampler import Conditioning, Model
from nodes.backends.parts import sampled
from nodes.backends.sigmas import ModelSigmas

# CLIP's pixel statistics, for pipelines whose folder has no image processor config.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# ComfyUI's SVD sampling settings, used when the scheduler config does not say.
SIGMA_MIN, SIGMA_MAX = 0.002, 700.0
# ComfyUI's fallbacks for conditioning that lacks SVD's keys (SVD_img2vid.encode_adm).
DEFAULT_FPS, DEFAULT_BUCKET = 6, 127


@dataclass(frozen=True)
class EdmSigmas(ModelSigmas):
    """Continuous EDM noise levels (ComfyUI's ModelSamplingContinuousEDM).

    The table is only what schedulers pick from (simple, ddim_uniform, beta index it;
    karras and exponential read its ends): 1000 σ evenly spaced in log σ. The model's
    timestep is not an index but c_noise = ¼·ln σ, and its inverse is exact, so the
    normal and sgm_uniform schedules come out log-linear.
    """

    prediction: str = "v_prediction"

    @classmethod
    def between(cls, sigma_min: float, sigma_max: float) -> EdmSigmas:
        import torch

        # float32, as ComfyUI builds it: σ_max is 700 to float32's precision
        return cls(torch.linspace(math.log(sigma_min), math.log(sigma_max), 1000).exp())

    def timestep(self, sigma: Any) -> Any:
        return 0.25 * sigma.log()

    def sigma(self, timestep: Any) -> Any:
        import torch

        return (torch.as_tensor(timestep, dtype=torch.float32) / 0.25).exp()


def repeat_to(tensor: Any, batch: int) -> Any:
    """``tensor`` with ``batch`` items, as ComfyUI's resize_to_batch_size picks them: the
    nearest source item for each (so one image is repeated to every frame)."""
    import torch

    count = tensor.shape[0]
    if count == batch:
        return tensor
    if batch <= 1:
        return tensor[:batch]
    if batch < count:
        scale = (count - 1) / (batch - 1)
        picks = [min(round(i * scale), count - 1) for i in range(batch)]
    else:
        scale = count / batch
        picks = [min(math.floor((i + 0.5) * scale), count - 1) for i in range(batch)]
    return tensor[torch.tensor(picks)]


class SvdCalls:
    """Mixed into the video backend holding ``pipe`` (a StableVideoDiffusionPipeline)."""

    pipe: Any
    device: str
    options: dict[str, Any]

    def clip_vision_encode(self, image: Any) -> Any:
        """The CLIP-vision ``image_embeds`` (B×D) of an IMAGE, preprocessed as ComfyUI's
        clip_preprocess does: shortest side to the encoder's size (bicubic, antialiased),
        centre crop, 8-bit rounding, CLIP's normalisation."""
        import torch

        encoder = self.pipe.image_encoder
        size = int(encoder.config.image_size)
        processor = getattr(self.pipe, "feature_extractor", None)
        mean = torch.tensor(getattr(processor, "image_mean", None) or CLIP_MEAN)
        std = torch.tensor(getattr(processor, "image_std", None) or CLIP_STD)
        pixels = image[..., :3].float().movedim(-1, 1)
        if pixels.shape[-2:] != (size, size):
            scale = size / min(pixels.shape[-2:])
            pixels = torch.nn.functional.interpolate(
                pixels, size=(round(scale * pixels.shape[-2]), round(scale * pixels.shape[-1])),
                mode="bicubic", antialias=True)
            top, left = (pixels.shape[-2] - size) // 2, (pixels.shape[-1] - size) // 2
            pixels = pixels[..., top:top + size, left:left + size]
        pixels = torch.clip(pixels * 255.0, 0, 255).round() / 255.0
        pixels = (pixels - mean.view(3, 1, 1)) / std.view(3, 1, 1)
        with torch.no_grad():
            out = encoder(pixel_values=pixels.to(self.device, encoder.dtype))
        return out.image_embeds.float().cpu()

    def vae_encode(self, pixels: Any) -> Any:
        """An IMAGE to raw latents (the posterior's mode), each side cropped to a multiple
        of the VAE's factor around the centre and alpha dropped, as ComfyUI's VAE does."""
        import torch

        vae, ratio = self.pipe.vae, int(self.pipe.vae_scale_factor)
        image = pixels[..., :3].float()
        height, width = image.shape[1] // ratio * ratio, image.shape[2] // ratio * ratio
        if height == 0 or width == 0:
            raise ValueError(f"a {image.shape[2]}x{image.shape[1]} picture is smaller than "
                             f"the VAE's {ratio} px grid")
        top, left = (image.shape[1] % ratio) // 2, (image.shape[2] % ratio) // 2
        image = image[:, top:top + height, left:left + width, :]
        with torch.no_grad():
            posterior = vae.encode((image.movedim(-1, 1) * 2.0 - 1.0).to(self.device, vae.dtype))
        return posterior.latent_dist.mode().float().cpu()

    def vae_decode(self, samples: Any) -> Any:
        """Raw latents (frames as the batch) to an IMAGE, through the temporal decoder:
        ``decode_chunk_size`` frames (manifest option, default 8) form one clip at a time,
        as in diffusers' SVD pipeline; ComfyUI sizes its chunks by free memory."""
        import torch

        vae = self.pipe.vae
        frames = samples.reshape(-1, *samples.shape[-3:]) if samples.ndim == 5 else samples
        chunk = max(int(self.options.get("decode_chunk_size", 8)), 1)
        decoded = []
        with torch.no_grad():
            for start in range(0, frames.shape[0], chunk):
                part = frames[start:start + chunk].to(self.device, vae.dtype)
                decoded.append(vae.decode(part, num_frames=part.shape[0]).sample.float().cpu())
        return torch.clamp((torch.cat(decoded) + 1.0) / 2.0, 0.0, 1.0).movedim(1, -1)

    def svd_model(self) -> Model:
        """The sampler's view of the pipeline: EDM σ, SD 1.x latent scaling, SVD's call."""
        config = dict(self.pipe.scheduler.config)
        sigmas = EdmSigmas.between(float(config.get("sigma_min") or SIGMA_MIN),
                                   float(config.get("sigma_max") or SIGMA_MAX))
        unet = self.pipe.unet
        scale = float(getattr(self.pipe.vae.config, "scaling_factor", 0.18215) or 0.18215)
        return Model(unet=unet, sigmas=sigmas, scale=scale, device=self.device,
                     dtype=unet.dtype, predict=self._edm_x0)

    def _edm_x0(self, x: Any, sigma: Any, entry: Conditioning) -> Any:
        """x0 of one conditioning entry at σ: SVD's UNet on c_in·x with the image latent
        beside it, v-prediction read back with EDM's c_skip and c_out (σ_data = 1)."""
        import torch

        frames = x.shape[0]
        variance = sigma.float() ** 2 + 1.0
        c_in, c_skip, c_out = variance.rsqrt(), 1.0 / variance, -sigma.float() * variance.rsqrt()
        image = entry.extra.get("concat_latent_image")
        if image is None:
            image = torch.zeros_like(x)
        image = image.float()
        if image.shape[1:] != x.shape[1:]:
            from nodes.comfy.resample import upscale

            image = upscale(image, x.shape[-1], x.shape[-2], "bilinear", "center")
        # ComfyUI concatenates the raw latent (not scaled into model space), as SVD was
        # trained and as diffusers' pipeline does too.
        model_in = torch.cat([x * c_in, repeat_to(image, frames)], dim=1).unsqueeze(0)
        embeds = entry.embeds.float()
        if embeds.ndim != 3 or embeds.shape[0] != 1:
            raise ValueError("SVD's conditioning holds one image embedding sequence (1×N×D), "
                             f"got {tuple(embeds.shape)}")
        extra = entry.extra
        time_ids = torch.tensor([[float(extra.get("fps", DEFAULT_FPS)) - 1.0,
                                  float(extra.get("motion_bucket_id", DEFAULT_BUCKET)),
                                  float(extra.get("augmentation_level", 0.0))]])
        unet, dtype = self.pipe.unet, self.pipe.unet.dtype
        with torch.no_grad():
            out = unet(model_in.to(self.device, dtype),
                       (0.25 * sigma.float().log()).reshape(1).to(self.device),
                       encoder_hidden_states=embeds.to(self.device, dtype),
                       added_time_ids=time_ids.to(self.device, dtype)).sample
        return x * c_skip + out[0].float().cpu() * c_out

    def ksample(self, latent: dict[str, Any], positive: list[list[Any]],
                negative: list[list[Any]], preview: bool = False,
                **settings: Any) -> Iterator[dict[str, Any]]:
        """KSampler on SVD: streams ``{"step", "total"[, "preview"]}`` after each step,
        then ``{"samples"}`` (raw latents, frames as the batch)."""
        yield from sampled(self.svd_model(), latent, positive, negative, preview, **settings)
