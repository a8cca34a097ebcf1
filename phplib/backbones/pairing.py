"""Pair ViT block i with the i-th Swin block of HTS-AT, counted across its stages.

ViT-B/32 has 12 blocks and HTSAT-tiny 2+2+6+2 = 12, so the two towers can be stepped through
together: at every pair the stage modules see both modalities at the same depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from torch import nn

from phplib.backbones.clap_audio import swin_blocks
from phplib.backbones.clip_vision import vision_info


@dataclass(frozen=True)
class BlockPair:
    """One depth step of the paired loop."""

    index: int  # depth, 0-based
    video_block: nn.Module
    audio_block: nn.Module
    audio_stage: int  # HTS-AT stage the audio block belongs to
    audio_block_in_stage: int
    audio_downsample: nn.Module | None  # patch merging that follows this audio block, if it ends a stage
    video_width: int  # token channels
    audio_width: int
    video_tokens: int  # tokens per frame (class token + patches)
    audio_tokens: int  # tokens per one-second segment at this block
    audio_window: int  # window side of the Swin block


def pair_blocks(visual: nn.Module, audio: nn.Module) -> list[BlockPair]:
    """Return the paired blocks; raise ``ValueError`` when the towers' depths differ."""
    video_blocks = list(visual.transformer.resblocks)
    audio_blocks = swin_blocks(audio)
    if len(video_blocks) != len(audio_blocks):
        raise ValueError(
            f"cannot pair the towers: the ViT has {len(video_blocks)} blocks and HTS-AT has "
            f"{len(audio_blocks)} ({'+'.join(str(d) for d in audio.depths)}); choose configs with equal depth"
        )
    info = vision_info(visual)
    stage_of = [(stage, index) for stage, depth in enumerate(audio.depths) for index in range(depth)]
    pairs = []
    for depth, (video_block, (audio_block, downsample)) in enumerate(zip(video_blocks, audio_blocks)):
        height, width = audio_block.input_resolution
        stage, in_stage = stage_of[depth]
        pairs.append(
            BlockPair(
                index=depth,
                video_block=video_block,
                audio_block=audio_block,
                audio_stage=stage,
                audio_block_in_stage=in_stage,
                audio_downsample=downsample,
                video_width=info.width,
                audio_width=audio_block.dim,
                video_tokens=info.num_tokens,
                audio_tokens=height * width,
                audio_window=audio_block.window_size,
            )
        )
    return pairs


def pairing_table(pairs: list[BlockPair]) -> pd.DataFrame:
    """Tabulate the pairing: one row per depth with widths and token counts of both towers."""
    return pd.DataFrame(
        [
            {
                "block": pair.index,
                "ViT block": pair.index,
                "ViT tokens x width": f"{pair.video_tokens} x {pair.video_width}",
                "HTS-AT stage.block": f"{pair.audio_stage}.{pair.audio_block_in_stage}",
                "HTS-AT tokens x width": f"{pair.audio_tokens} x {pair.audio_width}",
                "HTS-AT window": pair.audio_window,
                "patch merging after": pair.audio_downsample is not None,
            }
            for pair in pairs
        ]
    ).set_index("block")
