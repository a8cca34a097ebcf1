"""PHPModel: the frozen CLIP and CLAP towers stepped through together with the three PHP stages.

One clip: video ``[B, T, 3, H, W]`` and audio ``[B, T, S]`` (T one-second segments). T is folded
into the batch, both towers run block by block in pairs, and at each block the placement decides
which stage acts:

- S (TMA, shared by all tasks): after attention and/or MLP, each modality is updated from the other;
- M (TMDG, one per task): prompts generated from both modalities' tokens join attention as prefix keys/values;
- D (TMI, one per task): the task's learned prompts join attention as prefix keys/values.

The pooled tokens of each segment go to the task's head. Task identity selects the M and D
modules and the head; the towers never change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from phplib.backbones.clap_audio import (
    audio_info,
    build_clap_audio,
    htsat_embed,
    htsat_frontend,
    htsat_pool,
    swin_block_attention,
    swin_block_mlp,
)
from phplib.backbones.clip_vision import (
    build_clip_vision,
    normalize_frames,
    vision_info,
    vit_block_attention,
    vit_block_mlp,
    vit_embed,
    vit_pool,
)
from phplib.backbones.pairing import pair_blocks
from phplib.backbones.pretrained import resolve_backbone_weights
from phplib.backbones.weights import freeze
from phplib.config import BackboneConfig, StageConfig
from phplib.heads.base import TaskHead
from phplib.stages.placement import Placement
from phplib.stages.tma import SharedAdapter
from phplib.stages.tmdg import TaskDynamicPrompts
from phplib.stages.tmi import TaskPrompts

logger = logging.getLogger(__name__)


@dataclass
class ParameterReport:
    """Parameter counts of the model for one task."""

    backbone_frozen: int  # both towers
    shared_trainable: int  # TMA
    task_trainable: int  # this task's TMDG, TMI and head
    trainable_names: list[str]

    @property
    def trainable(self) -> int:
        return self.shared_trainable + self.task_trainable


def count_parameters(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


class PHPModel(nn.Module):
    """Frozen towers, the shared adapter, and per-task prompt modules and heads."""

    def __init__(self, backbone: BackboneConfig, stages: StageConfig):
        super().__init__()
        self.stage_config = stages
        # The files each tower loads: the config's own, else the shipped toy weights (pretrained: toy).
        self.vision_weights, self.audio_weights = resolve_backbone_weights(backbone)
        self.visual = build_clip_vision(backbone.vision_model, self.vision_weights)
        self.audio = build_clap_audio(backbone.audio_model, self.audio_weights)
        self.frozen_names = [f"visual.{n}" for n in freeze(self.visual)] + [f"audio.{n}" for n in freeze(self.audio)]
        self.vision = vision_info(self.visual)
        self.audio_tower = audio_info(self.audio)
        self.pairs = pair_blocks(self.visual, self.audio)
        self.placement = Placement.from_order(stages.order, stages.groups, len(self.pairs))
        self.video_widths = {p.index: p.video_width for p in self.pairs}
        self.audio_widths = {p.index: p.audio_width for p in self.pairs}
        shared_blocks = list(self.placement.blocks("S"))
        self.tma = (
            SharedAdapter(
                shared_blocks,
                self.video_widths,
                self.audio_widths,
                after_attention=stages.tma_after_attention,
                after_mlp=stages.tma_after_mlp,
                num_tokens=stages.tma_tokens,
                reduction=stages.tma_reduction,
                alpha=stages.tma_alpha,
                beta=stages.tma_beta,
                gamma=stages.tma_gamma,
            )
            if shared_blocks
            else None
        )
        self.tmdg = nn.ModuleDict()
        self.tmi = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        self.active_task: str | None = None
        # Blocks before the first stage run under torch.no_grad (see ``encode``); a switch so tests
        # can compare against the plain loop.
        self.frozen_prefix_no_grad = True

    @property
    def first_stage_block(self) -> int:
        """First block where any stage acts; the towers alone compute everything before it.

        0 at the default placement, where TMA sits at blocks 0 and 1. With "-MD" and the default
        groups it is 3.
        """
        stage_blocks = [pair.index for pair in self.pairs if self.placement.stage_at(pair.index) is not None]
        return min(stage_blocks, default=len(self.pairs))

    # ----- tasks -----------------------------------------------------------------------------

    @property
    def video_dim(self) -> int:
        """Size of a segment's pooled video feature."""
        return self.vision.output_dim

    @property
    def audio_dim(self) -> int:
        """Size of a segment's pooled audio feature."""
        return self.audio_tower.output_dim

    def prompt_key(self, name: str) -> str:
        """Key of the TMDG and TMI modules task ``name`` uses: its own name, or "shared" in the shared variant."""
        return name if self.stage_config.task_specific else "shared"

    def add_task(self, name: str, head: TaskHead) -> None:
        """Create the task's TMDG and TMI modules (once, in the shared variant) and register its head."""
        if name in self.heads:
            raise ValueError(f"task {name!r} was already added; task names must be unique in a stream")
        config = self.stage_config
        key = self.prompt_key(name)
        middle, deep = list(self.placement.blocks("M")), list(self.placement.blocks("D"))
        if middle and key not in self.tmdg:
            self.tmdg[key] = TaskDynamicPrompts(
                middle, self.video_widths, self.audio_widths, config.tmdg_bank_size, config.tmdg_length, config.tmdg_hidden
            )
        if deep and key not in self.tmi:
            self.tmi[key] = TaskPrompts(
                deep, self.video_widths, self.audio_widths, config.tmi_length, config.tmi_visual_only
            )
        self.heads[name] = head

    def set_task(self, name: str) -> None:
        """Select task ``name``'s TMDG, TMI and head for calls that do not name a task."""
        if name not in self.heads:
            raise KeyError(f"unknown task {name!r}; tasks added so far: {', '.join(self.heads) or 'none'}")
        self.active_task = name

    def task_modules(self, name: str) -> list[nn.Module]:
        """Return the modules task ``name`` uses besides TMA: its TMDG, TMI and head, those that exist."""
        key = self.prompt_key(name)
        prompts = [table[key] for table in (self.tmdg, self.tmi) if key in table]
        return prompts + [self.heads[name]]

    def task_owned_modules(self, name: str) -> list[nn.Module]:
        """Return the modules only task ``name`` uses; in the shared variant that is just its head."""
        if self.stage_config.task_specific:
            return self.task_modules(name)
        return [self.heads[name]]

    def shared_modules(self, name: str) -> list[nn.Module]:
        """Return the trainable modules task ``name`` shares with other tasks: TMA, and TMDG/TMI when shared."""
        shared = [self.tma] if self.tma is not None else []
        owned = {id(module) for module in self.task_owned_modules(name)}
        return shared + [module for module in self.task_modules(name) if id(module) not in owned]

    def parameter_report(self, name: str) -> ParameterReport:
        """Count frozen, shared and task-specific parameters, and name the trainable tensors."""
        trainable_ids = {id(p) for p in self.trainable_parameters(name)}
        names = [n for n, p in self.named_parameters() if p.requires_grad and id(p) in trainable_ids]
        return ParameterReport(
            backbone_frozen=count_parameters(self.visual) + count_parameters(self.audio),
            shared_trainable=sum(count_parameters(m) for m in self.shared_modules(name)),
            task_trainable=sum(count_parameters(m) for m in self.task_owned_modules(name)),
            trainable_names=names,
        )

    def trainable_parameters(self, name: str) -> list[nn.Parameter]:
        """Parameters to optimise while learning task ``name``: the shared modules plus its own."""
        params = []
        for module in self.shared_modules(name) + self.task_owned_modules(name):
            params.extend(module.parameters())
        return params

    # ----- inputs ------------------------------------------------------------------------------

    @torch.no_grad()
    def prepare_inputs(self, video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn decoded clips into tower inputs; nothing here trains, so the result can be cached.

        ``video``: uint8 ``[B, T, 3, H, W]``; ``audio``: float ``[B, T, S]`` at the tower's sample rate.
        Returns normalised frames ``[B, T, 3, H, W]`` and folded log-mel spectrograms ``[B, T, 1, F, F]``.
        """
        batch, segments = video.shape[:2]
        if video.shape[-1] != self.vision.image_size or video.shape[-2] != self.vision.image_size:
            raise ValueError(
                f"frames are {tuple(video.shape[-2:])} px but the vision tower expects "
                f"{self.vision.image_size} px; decode the clips at image_size={self.vision.image_size}"
            )
        frames = normalize_frames(video)
        spectrogram = htsat_frontend(self.audio, audio.flatten(0, 1).float())  # [B*T, 1, F, F]
        return frames, rearrange(spectrogram, "(b t) c f g -> b t c f g", b=batch, t=segments)

    # ----- forward ------------------------------------------------------------------------------

    def encode(
        self, frames: torch.Tensor, spectrogram: torch.Tensor, task: str | None = None, return_details: bool = False
    ):
        """Run the paired block loop with the stages of ``task``.

        ``frames`` ``[B, T, 3, H, W]`` and ``spectrogram`` ``[B, T, 1, F, F]`` from ``prepare_inputs``.
        Returns per-segment features ``video [B, T, Dv]`` and ``audio [B, T, Da]``. With
        ``return_details`` a third value holds TMDG mixture weights (``tmdg_weights_<block>``), TMA
        attention maps (``tma_maps_<block>_<point>``) and the final ViT patch tokens
        (``video_tokens`` ``[B, T, N, C]``, after the tower's last norm, class token removed).
        """
        task = self._resolve_task(task)
        batch, segments = frames.shape[:2]
        video = vit_embed(self.visual, frames.flatten(0, 1))  # [B*T, Nv, Cv]
        audio = htsat_embed(self.audio, spectrogram.flatten(0, 1))  # [B*T, Na, Ca]
        key = self.prompt_key(task)
        dynamic = self.tmdg[key] if key in self.tmdg else None
        prompts = self.tmi[key] if key in self.tmi else None
        details: dict[str, torch.Tensor] = {}

        # The blocks before the first stage see only frozen weights and inputs that need no
        # gradient, so autograd records nothing there either way. no_grad makes that explicit and
        # skips autograd's per-op bookkeeping. At the default placement TMA acts inside block 0,
        # so this prefix is empty. Inputs that require gradients (saliency maps) keep the plain loop.
        inputs_need_grad = frames.requires_grad or spectrogram.requires_grad
        start = self.first_stage_block if self.frozen_prefix_no_grad and not inputs_need_grad else 0
        with torch.no_grad():
            for pair in self.pairs[:start]:
                video = vit_block_mlp(pair.video_block, vit_block_attention(pair.video_block, video))
                audio = swin_block_mlp(pair.audio_block, swin_block_attention(pair.audio_block, audio))
                if pair.audio_downsample is not None:
                    audio = pair.audio_downsample(audio)

        for pair in self.pairs[start:]:
            block = pair.index
            stage = self.placement.stage_at(block)
            video_prefix = audio_prefix = None
            if stage == "M" and dynamic is not None:
                video_prefix, audio_prefix, weights = dynamic(block, video, audio)
                details[f"tmdg_weights_{block}"] = weights.detach()
            elif stage == "D" and prompts is not None:
                video_prefix = prompts.prefix(block, "video")
                audio_prefix = prompts.prefix(block, "audio")

            video = vit_block_attention(pair.video_block, video, video_prefix)
            audio = swin_block_attention(pair.audio_block, audio, audio_prefix)
            video, audio = self._shared_adapter(stage, block, "attention", video, audio, segments, details, return_details)
            video = vit_block_mlp(pair.video_block, video)
            audio = swin_block_mlp(pair.audio_block, audio)
            video, audio = self._shared_adapter(stage, block, "mlp", video, audio, segments, details, return_details)
            if pair.audio_downsample is not None:
                audio = pair.audio_downsample(audio)  # patch merging ends an HTS-AT stage

        if return_details:
            details["video_tokens"] = rearrange(self.visual.ln_post(video[:, 1:]), "(b t) n c -> b t n c", b=batch)
        video_features = rearrange(vit_pool(self.visual, video), "(b t) d -> b t d", b=batch)
        audio_features = rearrange(htsat_pool(self.audio, audio), "(b t) d -> b t d", b=batch)
        if return_details:
            return video_features, audio_features, details
        return video_features, audio_features

    def _shared_adapter(self, stage, block, point, video, audio, segments, details, return_details):
        """Apply TMA at ``block`` after ``point`` when the placement puts it there."""
        if stage != "S" or self.tma is None or not self.tma.acts_at(block, point):
            return video, audio
        if not return_details:
            return self.tma(block, point, video, audio, segments)
        video, audio, maps = self.tma(block, point, video, audio, segments, return_maps=True)
        details[f"tma_maps_{block}_{point}"] = maps
        return video, audio

    def _resolve_task(self, task: str | None) -> str:
        task = task if task is not None else self.active_task
        if task is None:
            raise ValueError("no task given and none selected; pass task= or call set_task first")
        if task not in self.heads:
            raise KeyError(f"unknown task {task!r}; tasks added so far: {', '.join(self.heads) or 'none'}")
        return task

    def forward(self, frames: torch.Tensor, spectrogram: torch.Tensor, task: str | None = None, batch: dict | None = None):
        """Encode with ``task``'s modules and apply its head.

        Items that share a ``video_id`` (several questions about one clip) are encoded once.
        """
        task = self._resolve_task(task)
        batch = batch if batch is not None else {}
        ids = batch.get("video_id")
        if ids is not None and len(set(ids)) < len(ids):
            first_of = {}
            positions = [first_of.setdefault(video_id, len(first_of)) for video_id in ids]
            unique_rows = [ids.index(video_id) for video_id in first_of]
            frames, spectrogram = frames[unique_rows], spectrogram[unique_rows]
            expand = torch.tensor(positions, device=frames.device)
        else:
            expand = None
        head = self.heads[task]
        if head.uses_video_tokens:
            video, audio, details = self.encode(frames, spectrogram, task, return_details=True)
            tokens = details["video_tokens"]
        else:
            video, audio = self.encode(frames, spectrogram, task)
            tokens = None
        if expand is not None:
            video, audio = video[expand], audio[expand]
            tokens = tokens[expand] if tokens is not None else None
        if tokens is not None:
            return head(video, audio, batch, video_tokens=tokens)
        return head(video, audio, batch)

    @torch.no_grad()
    def frozen_features(self, frames: torch.Tensor, spectrogram: torch.Tensor, return_tokens: bool = False):
        """Per-segment features of the towers alone, without any stage (for probes and references).

        Returns ``video [B, T, Dv]`` and ``audio [B, T, Da]``; with ``return_tokens`` also the final
        ViT patch tokens ``[B, T, N, C]`` (after the last norm, class token removed).
        """
        batch = frames.shape[0]
        tokens = self.visual.transformer(vit_embed(self.visual, frames.flatten(0, 1)))  # [B*T, 1 + N, C]
        video = vit_pool(self.visual, tokens)
        audio = htsat_pool(self.audio, self._audio_blocks_only(htsat_embed(self.audio, spectrogram.flatten(0, 1))))
        video = rearrange(video, "(b t) d -> b t d", b=batch)
        audio = rearrange(audio, "(b t) d -> b t d", b=batch)
        if return_tokens:
            patches = rearrange(self.visual.ln_post(tokens[:, 1:]), "(b t) n c -> b t n c", b=batch)
            return video, audio, patches
        return video, audio

    def _audio_blocks_only(self, audio: torch.Tensor) -> torch.Tensor:
        for pair in self.pairs:
            audio = swin_block_mlp(pair.audio_block, swin_block_attention(pair.audio_block, audio))
            if pair.audio_downsample is not None:
                audio = pair.audio_downsample(audio)
        return audio
