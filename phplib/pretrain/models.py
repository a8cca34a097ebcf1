"""The two-tower models pretrained at toy scale, and loading them back from their checkpoints.

- CLIP: open_clip's own ``CLIP`` class, with the tiny ViT config (``tiny-vit.json``) as its vision
  tower and a two-layer text transformer over the toy caption vocabulary. Its state dict is an
  ordinary open_clip state dict, so the vision tower loads through ``build_clip_vision``.
- CLAP: the tiny HTS-AT (``tiny-htsat.json``) as ``audio_branch``, a two-layer open_clip text
  transformer as ``text_branch`` and two-layer MLP projections, named as in LAION-CLAP. Its
  checkpoint ``{"epoch", "state_dict"}`` with ``module.``-prefixed keys has LAION-CLAP's layout, so
  the audio tower loads through ``build_clap_audio``. The text branch is not LAION-CLAP's RoBERTa.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from phplib.backbones.clap_audio import (
    build_clap_audio,
    htsat_embed,
    htsat_pool,
    swin_block_attention,
    swin_block_mlp,
    swin_blocks,
)
from phplib.backbones.clip_vision import resolve_vision_config
from phplib.backbones.weights import load_state_dict_file, match_state_dict
from phplib.pretrain.captions import CONTEXT_LENGTH, EOT_ID, VOCAB_SIZE

TEXT_WIDTH = 64
JOINT_DIM = 64  # size of the shared CLAP embedding space
TEXT_CFG = {
    "context_length": CONTEXT_LENGTH,
    "vocab_size": VOCAB_SIZE,
    "width": TEXT_WIDTH,
    "heads": 4,
    "layers": 2,
    "mlp_ratio": 2.0,
    "eos_id": EOT_ID,
}
INIT_LOGIT_SCALE = math.log(1 / 0.07)  # CLIP's initial temperature


def build_toy_clip(vision_model: str = "tiny-vit") -> nn.Module:
    """Build an open_clip ``CLIP`` with the tiny vision config and the toy text tower (random weights)."""
    from open_clip.model import CLIP

    name, config = resolve_vision_config(vision_model)
    model = CLIP(embed_dim=config["embed_dim"], vision_cfg=config["vision_cfg"], text_cfg=dict(TEXT_CFG),
                 quick_gelu=config.get("quick_gelu", False))
    model.visual.phplib_name = name
    return model


class ToyCLAP(nn.Module):
    """HTS-AT audio branch, a tiny text branch and MLP projections into a shared space, named as in LAION-CLAP."""

    def __init__(self, audio_model: str = "tiny-htsat"):
        super().__init__()
        from open_clip.model import _build_text_tower

        self.audio_branch = build_clap_audio(audio_model)
        audio_width = self.audio_branch.num_features
        self.text_branch = _build_text_tower(TEXT_WIDTH, dict(TEXT_CFG))
        self.audio_projection = nn.Sequential(nn.Linear(audio_width, JOINT_DIM), nn.ReLU(), nn.Linear(JOINT_DIM, JOINT_DIM))
        self.text_projection = nn.Sequential(nn.Linear(TEXT_WIDTH, JOINT_DIM), nn.ReLU(), nn.Linear(JOINT_DIM, JOINT_DIM))
        self.logit_scale_a = nn.Parameter(torch.tensor(INIT_LOGIT_SCALE))
        self.logit_scale_t = nn.Parameter(torch.tensor(INIT_LOGIT_SCALE))

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """Log-mel spectrogram before ``bn0``: ``[N, S]`` -> ``[N, 1, frames, mel]``; it has no trainable part."""
        tower = self.audio_branch
        return tower.logmel_extractor(tower.spectrogram_extractor(waveform.float()))

    def encode_audio_from_log_mel(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Normalise with ``bn0``, run HTS-AT and project: ``[N, 1, frames, mel]`` -> ``[N, JOINT_DIM]``."""
        tower = self.audio_branch
        x = tower.bn0(log_mel.transpose(1, 3)).transpose(1, 3)
        x = htsat_embed(tower, tower.reshape_wav2img(x))  # [N, L, C]
        for block, downsample in swin_blocks(tower):
            x = swin_block_mlp(block, swin_block_attention(block, x))
            if downsample is not None:
                x = downsample(x)
        return self.audio_projection(htsat_pool(tower, x))

    def encode_audio(self, waveform: torch.Tensor) -> torch.Tensor:
        """Embed one-second waveforms ``[N, S]`` -> ``[N, JOINT_DIM]`` (not normalised)."""
        return self.encode_audio_from_log_mel(self.log_mel(waveform))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embed token ids ``[N, context]`` -> ``[N, JOINT_DIM]`` (not normalised)."""
        return self.text_projection(self.text_branch(tokens))


def clap_checkpoint(model: ToyCLAP, epoch: int) -> dict:
    """Return a checkpoint in LAION-CLAP's layout: ``{"epoch", "state_dict"}`` with ``module.`` keys."""
    return {"epoch": epoch, "state_dict": {f"module.{key}": value for key, value in model.state_dict().items()}}


def load_toy_clip(path: str | Path, vision_model: str = "tiny-vit") -> nn.Module:
    """Build the toy CLIP and load a whole open_clip state dict (both towers) from ``path``."""
    model = build_toy_clip(vision_model)
    state = load_state_dict_file(path, how_to_obtain="regenerate it with `python -m phplib pretrain --scale toy`")
    match_state_dict(model, state, source=path, model_description="toy CLIP (vision and text towers)")
    return model.eval()


def load_toy_clap(path: str | Path, audio_model: str = "tiny-htsat") -> ToyCLAP:
    """Build the toy CLAP and load a whole checkpoint (audio and text branches) from ``path``."""
    model = ToyCLAP(audio_model)
    state = load_state_dict_file(path, how_to_obtain="regenerate it with `python -m phplib pretrain --scale toy`")
    match_state_dict(model, state, source=path, model_description="toy CLAP (audio and text branches)")
    return model.eval()


def normalized(features: torch.Tensor) -> torch.Tensor:
    """L2-normalise the last dimension, as the contrastive loss expects."""
    return F.normalize(features, dim=-1)
