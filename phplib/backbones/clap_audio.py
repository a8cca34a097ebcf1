"""CLAP audio tower (HTS-AT) from laion_clap: build offline, load a CLAP checkpoint, step block by block.

``import laion_clap`` runs its ``hook.py``, which imports ``transformers`` and its tokenizers
and can reach the model hub. phplib only needs the HTS-AT module, so it loads
``laion_clap/clap_module/htsat.py`` (and the two sibling modules it imports) under a private
package name, without executing either package's ``__init__``.

The block loop re-implements a Swin block's window attention so that prefix keys and values can
join every window (the same prompts for all windows of a clip). With no prefix it equals the
tower's own forward; a test checks that.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from phplib.backbones.weights import WeightsError, load_state_dict_file, match_state_dict

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_PRIVATE_PACKAGE = "_phplib_laion_clap_module"


def import_htsat_module() -> types.ModuleType:
    """Import laion_clap's ``htsat.py`` without running ``laion_clap/__init__.py``."""
    if f"{_PRIVATE_PACKAGE}.htsat" in sys.modules:
        return sys.modules[f"{_PRIVATE_PACKAGE}.htsat"]
    spec = importlib.util.find_spec("laion_clap")  # finding a top-level package does not execute it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("laion_clap is not installed; run `make setup` or `pip install laion_clap==1.1.7`")
    module_dir = Path(list(spec.submodule_search_locations)[0]) / "clap_module"
    if not (module_dir / "htsat.py").is_file():
        raise ImportError(f"laion_clap at {module_dir.parent} has no clap_module/htsat.py; install laion_clap==1.1.7")
    package = types.ModuleType(_PRIVATE_PACKAGE)
    package.__path__ = [str(module_dir)]
    sys.modules[_PRIVATE_PACKAGE] = package
    return importlib.import_module(f"{_PRIVATE_PACKAGE}.htsat")


@dataclass(frozen=True)
class AudioTowerInfo:
    """Static facts about a built HTS-AT tower."""

    name: str
    sample_rate: int  # Hz the front-end expects
    mel_bins: int
    spec_size: int  # side of the square "image" the spectrogram is folded into
    embed_dim: int  # channels of stage 0; stage s has embed_dim * 2**s
    depths: tuple[int, ...]
    output_dim: int  # pooled embedding size (channels of the last stage)


def resolve_audio_config(model: str | Path) -> tuple[str, dict[str, Any]]:
    """Return ``(name, config)`` for a shipped config name (``HTSAT-tiny``, ``tiny-htsat``) or a JSON path."""
    model_str = str(model)
    path = Path(model_str) if model_str.endswith(".json") else CONFIG_DIR / f"{model_str}.json"
    if not path.is_file():
        shipped = ", ".join(p.stem for p in CONFIG_DIR.glob("*htsat*.json")) + ", HTSAT-tiny"
        raise FileNotFoundError(
            f"audio tower config not found: {model_str}. Use a shipped name ({shipped}) or the path of a "
            "JSON file with 'audio_cfg' and 'htsat_cfg'."
        )
    with path.open(encoding="utf-8") as handle:
        config = json.load(handle)
    for key in ("audio_cfg", "htsat_cfg"):
        if key not in config:
            raise ValueError(f"audio tower config {path} lacks the {key!r} section")
    return model_str, config


def build_clap_audio(
    model: str | Path = "HTSAT-tiny",
    weights: str | Path | None = None,
    enable_fusion: bool = False,
) -> nn.Module:
    """Build laion_clap's ``HTSAT_Swin_Transformer`` without the text branch; optionally load a CLAP checkpoint."""
    if enable_fusion:
        raise NotImplementedError(
            "enable_fusion=True is not supported: phplib feeds one-second segments, for which CLAP's "
            "feature fusion of long inputs does not apply. Use a non-fusion checkpoint (630k-audioset-best.pt)."
        )
    htsat = import_htsat_module()
    name, config = resolve_audio_config(model)
    audio_cfg = types.SimpleNamespace(**config["audio_cfg"])
    htsat_cfg = dict(config["htsat_cfg"])
    htsat_cfg["patch_stride"] = tuple(htsat_cfg.get("patch_stride", (4, 4)))
    with warnings.catch_warnings():
        # laion_clap's window attention calls torch.meshgrid without indexing=, which warns;
        # its default ("ij") is what the code relies on, so the warning carries no information.
        warnings.filterwarnings("ignore", message="torch.meshgrid", category=UserWarning)
        tower = htsat.HTSAT_Swin_Transformer(
            num_classes=audio_cfg.class_num,
            config=audio_cfg,
            enable_fusion=False,
            fusion_type="None",
            **htsat_cfg,
        )
    tower.phplib_name = name
    tower.phplib_audio_cfg = config["audio_cfg"]
    if weights is not None:
        load_clap_audio_weights(tower, weights)
    return tower


def load_clap_audio_weights(tower: nn.Module, checkpoint: str | Path) -> None:
    """Load the audio branch of a CLAP checkpoint (keys ``[module.]audio_branch.*``) into ``tower``."""
    state = load_state_dict_file(
        checkpoint,
        how_to_obtain=(
            "download a LAION CLAP checkpoint such as 630k-audioset-best.pt from LAION's CLAP releases "
            "on a machine with internet access and give its local path"
        ),
    )
    audio = {key[len("audio_branch."):]: value for key, value in state.items() if key.startswith("audio_branch.")}
    if not audio:
        preview = ", ".join(sorted(state)[:3])
        raise WeightsError(
            f"checkpoint {checkpoint} has no audio-branch keys (expected keys starting with 'audio_branch.', "
            f"found e.g. {preview}). Give a LAION CLAP checkpoint, such as 630k-audioset-best.pt."
        )
    if any(key.startswith(("fusion_model.", "mel_conv1d.", "patch_embed.fusion_model.", "patch_embed.mel_conv2d."))
           for key in audio):
        raise WeightsError(
            f"checkpoint {checkpoint} was trained with feature fusion (CLAP's enable_fusion=True), but "
            "phplib builds HTS-AT with enable_fusion=False. Set backbone.audio_weights to a non-fusion "
            "checkpoint (630k-audioset-best.pt, not 630k-audioset-fusion-best.pt)."
        )
    match_state_dict(tower, audio, source=checkpoint, model_description="CLAP audio tower (HTS-AT)")
    logger.info("loaded CLAP audio weights from %s", checkpoint)


def audio_info(tower: nn.Module) -> AudioTowerInfo:
    """Describe a built HTS-AT tower."""
    cfg = tower.config
    return AudioTowerInfo(
        name=getattr(tower, "phplib_name", type(tower).__name__),
        sample_rate=cfg.sample_rate,
        mel_bins=cfg.mel_bins,
        spec_size=tower.spec_size,
        embed_dim=tower.embed_dim,
        depths=tuple(tower.depths),
        output_dim=tower.num_features,
    )


def htsat_frontend(tower: nn.Module, waveform: torch.Tensor) -> torch.Tensor:
    """Log-mel front-end, normalised by ``bn0`` and folded into the square input: ``[N, S]`` -> ``[N, 1, F, F]``.

    It has no trainable part, so its output can be computed once per clip and cached.
    """
    x = tower.spectrogram_extractor(waveform)  # [N, 1, frames, freq]
    x = tower.logmel_extractor(x)  # [N, 1, frames, mel]
    x = x.transpose(1, 3)
    x = tower.bn0(x)
    x = x.transpose(1, 3)
    return tower.reshape_wav2img(x)  # [N, 1, spec_size, spec_size]


@torch.no_grad()
def calibrate_mel_normalization(tower: nn.Module, waveforms: torch.Tensor, batch_size: int = 256) -> None:
    """Set ``bn0``'s running mean and variance to the per-mel-bin statistics of ``waveforms`` ``[N, S]``.

    A randomly initialised ``bn0`` has mean 0 and variance 1, so it leaves log-mel values (tens of
    dB) unnormalised. Pretrained CLAP checkpoints carry their own statistics and need no calibration.
    """
    features = []
    for start in range(0, waveforms.shape[0], batch_size):
        x = tower.spectrogram_extractor(waveforms[start:start + batch_size].float())
        features.append(tower.logmel_extractor(x).flatten(0, 2))  # [N * frames, mel]
    features = torch.cat(features)
    tower.bn0.running_mean.copy_(features.mean(0))
    tower.bn0.running_var.copy_(features.var(0).clamp_min(1e-5))


def htsat_embed(tower: nn.Module, spectrogram: torch.Tensor) -> torch.Tensor:
    """Patch-embed the folded spectrogram: ``[N, 1, F, F]`` -> tokens ``[N, L, C]``."""
    x = tower.patch_embed(spectrogram)
    if tower.ape:
        x = x + tower.absolute_pos_embed
    return tower.pos_drop(x)


def swin_blocks(tower: nn.Module) -> list[tuple[nn.Module, nn.Module | None]]:
    """List ``(block, downsample_after)`` over all stages in order; ``downsample_after`` ends a stage."""
    blocks = []
    for layer in tower.layers:
        for index, block in enumerate(layer.blocks):
            last = index == len(layer.blocks) - 1
            blocks.append((block, layer.downsample if last else None))
    return blocks


def _window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    # [B, H, W, C] -> [B * nW, window * window, C], batch-major like laion_clap's window_partition
    return rearrange(x, "b (h wh) (w ww) c -> (b h w) (wh ww) c", wh=window, ww=window)


def _window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    return rearrange(
        windows, "(b h w) (wh ww) c -> b (h wh) (w ww) c", h=height // window, w=width // window, wh=window
    )


def window_attention(
    attn: nn.Module,
    x: torch.Tensor,
    mask: torch.Tensor | None,
    batch: int,
    prefix: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Window attention with relative position bias, shift mask and optional prefix keys/values.

    ``x``: ``[B * nW, N, C]``. ``prefix``: ``(keys, values)``, each ``[B, L, C]`` or ``[L, C]``. A clip's
    prefix joins every one of its windows, with no position bias and no mask on the prefix columns.

    The position bias and the shift mask are one additive mask for ``scaled_dot_product_attention``,
    which fuses the softmax and keeps no ``[N, N]`` weights for the backward pass. Windows are viewed
    as ``[B, nW, ...]`` so the ``[nW, h, N, N]`` mask broadcasts over clips instead of being copied.
    """
    windows, tokens, _ = x.shape
    heads = attn.num_heads
    q, k, v = rearrange(attn.qkv(x), "b n (three h d) -> three b h n d", three=3, h=heads).unbind(0)
    bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)]
    additive = rearrange(bias, "(n m) h -> h n m", n=tokens)  # [h, N, N]
    if mask is not None:
        additive = additive.unsqueeze(0) + mask.unsqueeze(1)  # [nW, h, N, N]
    groups = windows // additive.shape[0] if mask is not None else windows
    q, k, v = (t.reshape(groups, windows // groups, heads, tokens, t.shape[-1]) for t in (q, k, v))
    if prefix is not None:
        prefix_key, prefix_value = prefix
        if prefix_key.dim() == 2:
            prefix_key = prefix_key.unsqueeze(0).expand(batch, -1, -1)
            prefix_value = prefix_value.unsqueeze(0).expand(batch, -1, -1)
        length = prefix_key.shape[1]
        per_clip = windows // batch

        def per_window(t: torch.Tensor) -> torch.Tensor:
            t = rearrange(t.to(v.dtype), "b l (h d) -> b h l d", h=heads).repeat_interleave(per_clip, dim=0)
            return t.reshape(groups, windows // groups, heads, length, t.shape[-1])

        k = torch.cat([per_window(prefix_key), k], dim=-2)
        v = torch.cat([per_window(prefix_value), v], dim=-2)
        additive = torch.cat([additive.new_zeros(*additive.shape[:-1], length), additive], dim=-1)
    dropout = attn.attn_drop.p if attn.training else 0.0
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=additive.to(q.dtype), dropout_p=dropout, scale=attn.scale
    )  # [groups, nW or 1, h, N, d]
    out = rearrange(out.reshape(windows, heads, tokens, -1), "b h n d -> b n (h d)")
    return attn.proj_drop(attn.proj(out))


def swin_block_attention(
    block: nn.Module, x: torch.Tensor, prefix: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """Run the attention half of a Swin block (norm, cyclic shift, windows, attention, residual)."""
    height, width = block.input_resolution
    batch, length, channels = x.shape
    shortcut = x
    x = block.norm1(x).view(batch, height, width, channels)
    if block.shift_size > 0:
        x = torch.roll(x, shifts=(-block.shift_size, -block.shift_size), dims=(1, 2))
    windows = _window_partition(x, block.window_size)  # [B*nW, ws*ws, C]
    windows = window_attention(block.attn, windows, block.attn_mask, batch, prefix)
    x = _window_reverse(windows, block.window_size, height, width)
    if block.shift_size > 0:
        x = torch.roll(x, shifts=(block.shift_size, block.shift_size), dims=(1, 2))
    return shortcut + block.drop_path(x.reshape(batch, length, channels))


def swin_block_mlp(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run the MLP half of a Swin block."""
    return x + block.drop_path(block.mlp(block.norm2(x)))


def htsat_pool(tower: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Final norm and HTS-AT's latent pooling: tokens ``[N, L, C]`` -> embedding ``[N, C]``.

    Follows ``forward_features``: tokens are laid out as (frequency, time), frequency bands are
    regrouped as the tower does, and everything is averaged.
    """
    x = tower.norm(x)
    batch, length, channels = x.shape
    frames = tower.spec_size
    side_f = frames // (2 ** (len(tower.depths) - 1)) // tower.patch_stride[0]
    side_t = frames // (2 ** (len(tower.depths) - 1)) // tower.patch_stride[1]
    x = x.permute(0, 2, 1).reshape(batch, channels, side_f, side_t)
    band = side_f // tower.freq_ratio
    x = x.reshape(batch, channels, side_f // band, band, side_t).permute(0, 1, 3, 2, 4)
    return x.reshape(batch, channels, -1).mean(dim=-1)


def htsat_forward_blockwise(tower: nn.Module, waveform: torch.Tensor) -> torch.Tensor:
    """Reference block loop without prompts; equals ``tower({"waveform": waveform})["embedding"]``."""
    x = htsat_embed(tower, htsat_frontend(tower, waveform))
    for block, downsample in swin_blocks(tower):
        x = swin_block_attention(block, x)
        x = swin_block_mlp(block, x)
        if downsample is not None:
            x = downsample(x)
    return htsat_pool(tower, x)
