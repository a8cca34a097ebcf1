"""Contrastive pretraining of the tiny towers on the pretraining world, and the shipped checkpoint files.

Both towers train with open_clip's ``ClipLoss`` (symmetric cross-entropy over the batch's
similarity matrix): the tiny ViT against captions of images, the tiny HTS-AT against captions of
sounds. HTS-AT's ``bn0`` gets the per-mel-bin statistics of the training sounds before training
and stays fixed, so the checkpoint carries the log-mel normalisation.

Runs are deterministic for a seed on one machine with one torch thread: the same command writes
the same bytes. Other thread counts or CPUs may round differently.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from phplib.backbones.clap_audio import calibrate_mel_normalization
from phplib.backbones.clip_vision import normalize_frames
from phplib.pretrain.captions import tokenize
from phplib.pretrain.models import ToyCLAP, build_toy_clip, clap_checkpoint, normalized
from phplib.pretrain.world import PretrainSet, build_pretrain_set

logger = logging.getLogger(__name__)

CLIP_FILE = "tiny-vit-toy-clip.pt"
CLAP_FILE = "tiny-htsat-toy-clap.pt"
CHECKSUM_FILE = "SHA256SUMS"
# Front-end tensors are fixed transforms (STFT, mel filters) and the normalisation statistics,
# kept in float32 so that rounding does not change the input every block sees. Every other
# floating-point tensor is stored as float16, which keeps both files together under 10 MB.
FLOAT32_PREFIXES = ("audio_branch.spectrogram_extractor.", "audio_branch.logmel_extractor.", "audio_branch.bn0.")


@dataclass(frozen=True)
class PretrainSettings:
    """Size and optimisation of one toy pretraining run."""

    steps: int = 250  # optimisation steps per tower
    seed: int = 1  # differs from the toy world's default seed 0
    num_images: int = 2048
    num_sounds: int = 2048
    batch_size: int = 64
    lr: float = 1e-3  # AdamW peak, linear warm-up then cosine decay to zero
    weight_decay: float = 0.05
    warmup_steps: int = 10


def _optimizer(model: nn.Module, settings: PretrainSettings) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    decay = [p for name, p in trainable if p.ndim >= 2]
    no_decay = [p for name, p in trainable if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.lr,
    )

    def factor(step: int) -> float:
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _train_contrastive(
    model: nn.Module,
    encode_items,
    encode_text,
    logit_scale: nn.Parameter,
    items: torch.Tensor,
    tokens: torch.Tensor,
    settings: PretrainSettings,
    description: str,
    progress: bool,
) -> list[float]:
    """Run ``settings.steps`` steps of ClipLoss on random batches of (item, caption) pairs; return the losses."""
    from open_clip.loss import ClipLoss

    loss_fn = ClipLoss()
    optimizer, scheduler = _optimizer(model, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    losses = []
    bar = tqdm(range(settings.steps), desc=description, disable=not progress)
    for _ in bar:
        batch = torch.randperm(len(items), generator=generator)[: settings.batch_size]
        item_features = normalized(encode_items(items[batch]))
        text_features = normalized(encode_text(tokens[batch]))
        loss = loss_fn(item_features, text_features, logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            logit_scale.clamp_(0, math.log(100))  # CLIP's cap on the temperature
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses


def pretrain_clip(data: PretrainSet, settings: PretrainSettings, progress: bool = True) -> tuple[nn.Module, list[float]]:
    """Pretrain the toy CLIP (tiny ViT and text tower) on the images and captions of ``data``."""
    torch.manual_seed(settings.seed)
    model = build_toy_clip()
    model.train()
    images = normalize_frames(torch.from_numpy(data.images))  # [N, 3, H, W]
    tokens = tokenize(data.image_captions)
    losses = _train_contrastive(
        model, model.encode_image, model.encode_text, model.logit_scale, images, tokens, settings,
        "pretrain CLIP (tiny ViT)", progress,
    )
    return model.eval(), losses


def pretrain_clap(data: PretrainSet, settings: PretrainSettings, progress: bool = True) -> tuple[ToyCLAP, list[float]]:
    """Pretrain the toy CLAP (tiny HTS-AT and text tower) on the sounds and captions of ``data``.

    ``bn0`` is calibrated on the training sounds first and kept in eval mode with fixed affine
    parameters, so training never changes the normalisation.
    """
    torch.manual_seed(settings.seed)
    model = ToyCLAP()
    waveforms = torch.from_numpy(data.sounds)
    calibrate_mel_normalization(model.audio_branch, waveforms)
    with torch.no_grad():
        log_mels = torch.cat([model.log_mel(chunk) for chunk in waveforms.split(256)])  # [N, 1, frames, mel]
    for parameter in model.audio_branch.bn0.parameters():
        parameter.requires_grad_(False)
    model.train()
    model.audio_branch.bn0.eval()
    tokens = tokenize(data.sound_captions)
    losses = _train_contrastive(
        model, model.encode_audio_from_log_mel, model.encode_text, model.logit_scale_a, log_mels, tokens, settings,
        "pretrain CLAP (tiny HTS-AT)", progress,
    )
    with torch.no_grad():
        model.logit_scale_t.copy_(model.logit_scale_a)  # one temperature serves both directions here
    return model.eval(), losses


def shipping_state(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Cast floating-point tensors to float16, except those under ``FLOAT32_PREFIXES``; clone everything."""
    shipped = {}
    for key, value in state.items():
        bare = key.removeprefix(prefix)
        keep = not value.is_floating_point() or bare.startswith(FLOAT32_PREFIXES)
        shipped[key] = value.detach().clone().contiguous() if keep else value.detach().to(torch.float16).contiguous()
    return shipped


def sha256_of(path: str | Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(out_dir: Path, names: list[str]) -> Path:
    """Write ``SHA256SUMS`` (``sha256sum`` format) for ``names`` in ``out_dir``."""
    lines = [f"{sha256_of(out_dir / name)}  {name}\n" for name in names]
    path = out_dir / CHECKSUM_FILE
    path.write_text("".join(lines), encoding="utf-8")
    return path


def pretrain_toy(out_dir: str | Path, settings: PretrainSettings = PretrainSettings(), progress: bool = True) -> dict:
    """Render the pretraining world, pretrain both towers, write both checkpoints and ``SHA256SUMS``.

    Returns a summary with the files, final losses and wall times in seconds.
    """
    if settings.steps < 1 or settings.batch_size < 2:
        raise ValueError(f"need steps >= 1 and batch_size >= 2, got {settings.steps} and {settings.batch_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"seed": settings.seed, "steps": settings.steps}

    started = time.perf_counter()
    from phplib.backbones.clip_vision import resolve_vision_config
    from phplib.backbones.clap_audio import resolve_audio_config

    image_size = resolve_vision_config("tiny-vit")[1]["vision_cfg"]["image_size"]
    sample_rate = resolve_audio_config("tiny-htsat")[1]["audio_cfg"]["sample_rate"]
    data = build_pretrain_set(settings.num_images, settings.num_sounds, settings.seed, image_size, sample_rate)
    summary["render_s"] = time.perf_counter() - started

    started = time.perf_counter()
    clip, clip_losses = pretrain_clip(data, settings, progress)
    torch.save(shipping_state(clip.state_dict()), out_dir / CLIP_FILE)
    summary["clip_s"] = time.perf_counter() - started

    started = time.perf_counter()
    clap, clap_losses = pretrain_clap(data, settings, progress)
    checkpoint = clap_checkpoint(clap, epoch=settings.steps)
    checkpoint["state_dict"] = shipping_state(checkpoint["state_dict"], prefix="module.")
    torch.save(checkpoint, out_dir / CLAP_FILE)
    summary["clap_s"] = time.perf_counter() - started

    write_checksums(out_dir, [CLIP_FILE, CLAP_FILE])
    summary.update(
        clip_loss_first=clip_losses[0], clip_loss_last=clip_losses[-1],
        clap_loss_first=clap_losses[0], clap_loss_last=clap_losses[-1],
        files=[str(out_dir / CLIP_FILE), str(out_dir / CLAP_FILE), str(out_dir / CHECKSUM_FILE)],
    )
    logger.info("pretrained toy towers into %s in %.0f s", out_dir, summary["render_s"] + summary["clip_s"] + summary["clap_s"])
    return summary
