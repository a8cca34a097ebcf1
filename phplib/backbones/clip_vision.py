"""CLIP vision tower from open_clip: build, load local weights, freeze, step block by block.

The block-by-block forward re-implements a ViT residual block so that learned
prefix keys and values (prompts) can join any block's self-attention. With no
prefix it computes exactly what open_clip's own forward computes; a test checks
that with ``torch.allclose``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from phplib.backbones.weights import WeightsError, load_state_dict_file, match_state_dict

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

# open_clip's OPENAI_DATASET_MEAN / OPENAI_DATASET_STD, the normalisation CLIP towers were trained with.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class VisionTowerInfo:
    """Static facts about a built vision tower that the rest of phplib needs."""

    name: str  # model name or config path it was built from
    image_size: int  # input side in pixels
    width: int  # token channels inside the transformer
    num_blocks: int  # residual attention blocks
    num_heads: int
    num_tokens: int  # class token + patches
    output_dim: int  # pooled embedding size after the projection


def resolve_vision_config(model: str | Path) -> tuple[str, dict[str, Any]]:
    """Return ``(name, config)`` for an open_clip model name, a shipped phplib config or a JSON path.

    The config is an open_clip model config with ``embed_dim`` and ``vision_cfg`` keys.
    """
    model_str = str(model)
    shipped = CONFIG_DIR / f"{model_str}.json"
    path = Path(model_str)
    if model_str.endswith(".json") or shipped.is_file():
        config_path = path if model_str.endswith(".json") else shipped
        if not config_path.is_file():
            raise FileNotFoundError(
                f"vision tower config not found: {config_path}. Give an open_clip model name such as "
                f"'ViT-B-32', a shipped config name ({', '.join(p.stem for p in CONFIG_DIR.glob('*vit*.json'))}) "
                "or the path of a JSON file with 'embed_dim' and 'vision_cfg'."
            )
        with config_path.open(encoding="utf-8") as handle:
            config = json.load(handle)
        return (model_str if config_path == shipped else str(config_path)), config
    if ":" in model_str:
        raise ValueError(
            f"vision tower {model_str!r} names a hub location; phplib never downloads. "
            "Download the weights on a machine with internet access and give a local file instead."
        )

    import open_clip

    config = open_clip.get_model_config(model_str)
    if config is None:
        known = ", ".join(name for name in open_clip.list_models() if name.startswith("ViT"))
        raise ValueError(f"unknown open_clip vision model {model_str!r}; known ViT names: {known}")
    return model_str, config


def build_clip_vision(model: str | Path = "ViT-B-32", weights: str | Path | None = None) -> nn.Module:
    """Build an open_clip ``VisionTransformer`` offline, optionally loading a local weights file.

    ``weights`` may be an open_clip CLIP state dict (keys under ``visual.``) or a vision-only state
    dict, saved as ``.pt``/``.bin`` (read with ``weights_only=True``) or ``.safetensors``.
    """
    # open_clip's vision-tower builder is not exported at the top level; it builds the tower
    # alone, without the text tower that open_clip.create_model would also allocate.
    from open_clip.model import _build_vision_tower

    name, config = resolve_vision_config(model)
    visual = _build_vision_tower(
        config["embed_dim"], config["vision_cfg"], quick_gelu=config.get("quick_gelu", False)
    )
    for block in visual.transformer.resblocks:
        if not isinstance(block.attn, nn.MultiheadAttention):
            raise NotImplementedError(
                f"{name}: block type {type(block).__name__} is not supported; "
                "phplib's prefix attention needs open_clip's default ResidualAttentionBlock"
            )
    if getattr(visual, "attn_pool", None) is not None:
        raise NotImplementedError(f"{name}: attentional pooling towers are not supported")
    visual.phplib_name = name
    if weights is not None:
        load_clip_vision_weights(visual, weights)
    return visual


def load_clip_vision_weights(visual: nn.Module, weights: str | Path) -> None:
    """Load a local open_clip state dict into ``visual``; raise ``WeightsError`` naming the file on mismatch."""
    state = load_state_dict_file(
        weights,
        how_to_obtain=(
            "export it on a machine with internet access: "
            "model = open_clip.create_model('ViT-B-32', pretrained='openai'); "
            "torch.save(model.state_dict(), 'ViT-B-32-openai.pt')"
        ),
    )
    if any(key.startswith("visual.") for key in state):
        state = {key[len("visual."):]: value for key, value in state.items() if key.startswith("visual.")}
    match_state_dict(visual, state, source=weights, model_description="CLIP vision tower")
    logger.info("loaded CLIP vision weights from %s", weights)


def vision_info(visual: nn.Module) -> VisionTowerInfo:
    """Describe a built vision tower."""
    block = visual.transformer.resblocks[0]
    return VisionTowerInfo(
        name=getattr(visual, "phplib_name", type(visual).__name__),
        image_size=visual.image_size[0],
        width=visual.transformer.width,
        num_blocks=len(visual.transformer.resblocks),
        num_heads=block.attn.num_heads,
        num_tokens=visual.positional_embedding.shape[0],
        output_dim=visual.output_dim,
    )


def normalize_frames(frames: torch.Tensor) -> torch.Tensor:
    """Turn uint8 frames ``[..., 3, H, W]`` into CLIP-normalised float frames."""
    mean = torch.tensor(CLIP_MEAN, device=frames.device).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, device=frames.device).view(3, 1, 1)
    return (frames.float() / 255.0 - mean) / std


def vit_embed(visual: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Patchify, add the class token and positions, apply ``ln_pre``: ``[B, 3, H, W]`` -> ``[B, N, C]``."""
    return visual._embeds(images)


def prefix_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    num_heads: int,
    prefix: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Multi-head attention where optional prefix keys and values join the sequence's own.

    ``query``, ``key``, ``value``: ``[B, N, C]`` after the input projection.
    ``prefix``: ``(keys, values)``, each ``[B, L, C]`` or ``[L, C]`` (shared by the batch).
    Returns the heads merged back, ``[B, N, C]``, before the output projection.
    """
    if prefix is not None:
        prefix_key, prefix_value = prefix
        if prefix_key.dim() == 2:
            prefix_key = prefix_key.unsqueeze(0).expand(key.shape[0], -1, -1)
            prefix_value = prefix_value.unsqueeze(0).expand(value.shape[0], -1, -1)
        key = torch.cat([prefix_key.to(key.dtype), key], dim=1)  # [B, L + N, C]
        value = torch.cat([prefix_value.to(value.dtype), value], dim=1)
    q = rearrange(query, "b n (h d) -> b h n d", h=num_heads)
    k = rearrange(key, "b n (h d) -> b h n d", h=num_heads)
    v = rearrange(value, "b n (h d) -> b h n d", h=num_heads)
    out = F.scaled_dot_product_attention(q, k, v)  # [B, h, N, d]
    return rearrange(out, "b h n d -> b n (h d)")


def vit_block_attention(
    block: nn.Module, x: torch.Tensor, prefix: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """Run the attention half of an open_clip residual block: ``x + ls_1(attn(ln_1(x)))``."""
    attn: nn.MultiheadAttention = block.attn
    hidden = block.ln_1(x)
    query, key, value = F.linear(hidden, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    out = prefix_attention(query, key, value, attn.num_heads, prefix)
    out = attn.out_proj(out)
    return x + block.ls_1(out)


def vit_block_mlp(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run the MLP half of an open_clip residual block: ``x + ls_2(mlp(ln_2(x)))``."""
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def vit_pool(visual: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pool the final tokens the way the tower does and project: ``[B, N, C]`` -> ``[B, output_dim]``."""
    pooled, _ = visual._pool(x)
    if visual.proj is not None:
        pooled = pooled @ visual.proj
    return pooled


def vit_forward_blockwise(visual: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Reference block loop without prompts; equals ``visual(images)``."""
    x = vit_embed(visual, images)
    for block in visual.transformer.resblocks:
        x = vit_block_attention(block, x)
        x = vit_block_mlp(block, x)
    return vit_pool(visual, x)
