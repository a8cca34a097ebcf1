"""What every baseline shares: a training loop with a regulariser hook, prompted forwards, the query.

Every baseline runs on the same ``PHPModel`` as PHP (the same frozen towers, the same pairing of
their blocks) and keeps one head per task, because the tasks of a stream have different output
spaces (AVE classes, LLP labels, MUSIC-AVQA answers) and one shared head could not serve them.
The task identity picks the head at test time for every method; the prompt methods choose their
prompts from the input alone.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

import torch
from einops import rearrange
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from phplib.backbones.clap_audio import htsat_embed, htsat_pool, swin_block_attention, swin_block_mlp
from phplib.backbones.clip_vision import vit_block_attention, vit_block_mlp, vit_embed, vit_pool
from phplib.config import TrainConfig
from phplib.continual.learner import ClipGroupedBatchSampler, Learner, TaskResult, collate, merge_collected, to_device
from phplib.model import PHPModel, count_parameters

logger = logging.getLogger(__name__)

# (keys [N, L, C], values [N, L, C]) for one tower at one block, N = clips * segments.
Prefix = tuple[torch.Tensor, torch.Tensor]
# block index -> (video prefix or None, audio prefix or None)
PrefixTable = dict[int, tuple[Prefix | None, Prefix | None]]


def unique_parameters(modules: list[nn.Module]) -> list[nn.Parameter]:
    """Return the parameters of ``modules``, each once, in order."""
    return unique_parameters_of([parameter for module in modules for parameter in module.parameters()])


class IndexedData(Dataset):
    """A dataset whose items also carry their position as ``index`` (LwF looks up recorded outputs by it)."""

    def __init__(self, data: Dataset):
        self.data = data
        self.fields = getattr(data, "fields", None)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict:
        return {**self.data[index], "index": index}


def training_loader(data: Dataset, config: TrainConfig) -> DataLoader:
    """Shuffled batches seeded by ``config.seed``; questions about one clip stay in one batch (as PHP's learner does)."""
    generator = torch.Generator().manual_seed(config.seed)
    fields = getattr(data, "fields", None) or []
    video_ids = [item.get("video_id") for item in fields]
    if video_ids and None not in video_ids and len(set(video_ids)) < len(video_ids):
        return DataLoader(data, batch_sampler=ClipGroupedBatchSampler(video_ids, config.batch_size, generator), collate_fn=collate)
    return DataLoader(data, batch_size=config.batch_size, shuffle=True, collate_fn=collate, generator=generator)


def deduplicate_clips(batch: dict, frames: torch.Tensor, spectrogram: torch.Tensor):
    """Keep one row per clip when several items share a ``video_id``; return the rows and the index that expands them back."""
    ids = batch.get("video_id")
    if ids is None or len(set(ids)) == len(ids):
        return frames, spectrogram, None
    first_of: dict[str, int] = {}
    positions = [first_of.setdefault(video_id, len(first_of)) for video_id in ids]
    rows = [ids.index(video_id) for video_id in first_of]
    return frames[rows], spectrogram[rows], torch.tensor(positions, device=frames.device)


def prompted_encode(model: PHPModel, frames: torch.Tensor, spectrogram: torch.Tensor, prefixes: PrefixTable, with_tokens: bool = False):
    """Run both frozen towers block by block with prefix keys/values at the blocks of ``prefixes``.

    The prefixes go through the towers' own prefix attention (``vit_block_attention`` and the
    HTS-AT window attention of ``swin_block_attention``), the mechanism PHP's TMDG and TMI use.
    No PHP stage acts. ``frames [B, T, 3, H, W]``, ``spectrogram [B, T, 1, F, F]``; each prefix has
    ``B * T`` rows (one per segment). Returns ``video [B, T, Dv]``, ``audio [B, T, Da]`` and, with
    ``with_tokens``, the final ViT patch tokens ``[B, T, N, C]``.
    """
    batch = frames.shape[0]
    video = vit_embed(model.visual, frames.flatten(0, 1))  # [B*T, Nv, Cv]
    audio = htsat_embed(model.audio, spectrogram.flatten(0, 1))  # [B*T, Na, Ca]
    for pair in model.pairs:
        video_prefix, audio_prefix = prefixes.get(pair.index, (None, None))
        video = vit_block_mlp(pair.video_block, vit_block_attention(pair.video_block, video, video_prefix))
        audio = swin_block_mlp(pair.audio_block, swin_block_attention(pair.audio_block, audio, audio_prefix))
        if pair.audio_downsample is not None:
            audio = pair.audio_downsample(audio)
    video_features = rearrange(vit_pool(model.visual, video), "(b t) d -> b t d", b=batch)
    audio_features = rearrange(htsat_pool(model.audio, audio), "(b t) d -> b t d", b=batch)
    if with_tokens:
        tokens = rearrange(model.visual.ln_post(video[:, 1:]), "(b t) n c -> b t n c", b=batch)
        return video_features, audio_features, tokens
    return video_features, audio_features


def apply_head(model: PHPModel, task: str, batch: dict, encode: Callable) -> object:
    """Encode each clip of ``batch`` once with ``encode(frames, spectrogram, with_tokens)`` and apply ``task``'s head."""
    frames, spectrogram, expand = deduplicate_clips(batch, batch["frames"], batch["spectrogram"])
    head = model.heads[task]
    encoded = encode(frames, spectrogram, head.uses_video_tokens)
    if expand is not None:
        encoded = tuple(part[expand] for part in encoded)
    if head.uses_video_tokens:
        video, audio, tokens = encoded
        return head(video, audio, batch, video_tokens=tokens)
    video, audio = encoded
    return head(video, audio, batch)


@torch.no_grad()
def frozen_query(model: PHPModel, frames: torch.Tensor, spectrogram: torch.Tensor) -> torch.Tensor:
    """The input's query: frozen video and audio features, each L2-normalised, averaged over segments, concatenated.

    ``[B, Dv + Da]``. L2P's query is the frozen ViT's class token of the image. A clip has two towers
    and T segments, so both pooled features are averaged over the segments and joined. Each
    modality is normalised first so that neither dominates by its scale.
    """
    video, audio = model.frozen_features(frames, spectrogram)  # [B, T, Dv], [B, T, Da]
    video = nn.functional.normalize(video, dim=-1).mean(dim=1)
    audio = nn.functional.normalize(audio, dim=-1).mean(dim=1)
    return torch.cat([video, audio], dim=-1)


def per_segment(prompts: torch.Tensor, segments: int) -> torch.Tensor:
    """Repeat per-clip prompts ``[B, L, C]`` for each of the clip's segments: ``[B * T, L, C]`` (b-major, as the towers fold T)."""
    return prompts.repeat_interleave(segments, dim=0)


class BaselineLearner(Learner):
    """The learner contract with one training loop for every baseline.

    A method overrides ``trainable_parameters`` (what its optimiser updates), ``outputs`` (its
    forward), ``regularizer`` (a loss added to the task's own loss) and the begin/end hooks. Adam
    with cosine decay, gradient clipping and the batch order are PHP's, from the same ``TrainConfig``.
    """

    name = "baseline"

    def __init__(self, model: PHPModel, config: TrainConfig, progress: bool = True):
        self.model = model
        self.config = config
        self.progress = progress
        self.device = torch.device(config.device)
        self.model.to(self.device)
        self.task_seconds: dict[str, float] = {}
        self.epoch_losses: dict[str, list[float]] = {}  # task -> mean training loss of each epoch
        self.epoch_regularizers: dict[str, list[float]] = {}  # task -> mean regulariser term of each epoch
        self.seen_tasks: list[str] = []

    # ----- hooks ----------------------------------------------------------------------------------

    def trainable_parameters(self, task_name: str) -> list[nn.Parameter]:
        raise NotImplementedError

    def stored_per_task(self, task_name: str) -> int:
        """Parameters kept for ``task_name`` alone (its head, and whatever else the method keeps per task)."""
        return count_parameters(self.model.heads[task_name])

    def outputs(self, task_name: str, batch: dict, train: bool = False):
        return self.model(batch["frames"], batch["spectrogram"], task_name, batch)

    def regularizer(self, task, batch: dict, outputs) -> torch.Tensor | None:
        return None

    def after_training(self, task, data: Dataset) -> None:
        """Called at the end of ``train_task`` with the task's training data (EWC estimates its Fisher here)."""

    # ----- contract -------------------------------------------------------------------------------

    def begin_task(self, task) -> None:
        head = task.make_head(self.model)
        self.model.add_task(task.name, head.to(self.device))
        self.model.set_task(task.name)
        logger.info(
            "begin task %s with %s: trainable %s, stored for this task %s",
            task.name, self.name, f"{self.parameter_count(task.name):,}", f"{self.stored_per_task(task.name):,}",
        )

    def parameter_count(self, task_name: str) -> int:
        """Parameters the optimiser updates while learning ``task_name``."""
        return sum(p.numel() for p in unique_parameters_of(self.trainable_parameters(task_name)))

    def train_task(self, task, data: Dataset) -> TaskResult:
        start = time.perf_counter()
        config = self.config
        parameters = unique_parameters_of(self.trainable_parameters(task.name))
        for parameter in parameters:
            parameter.requires_grad_(True)
        optimizer = torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
        loader = training_loader(IndexedData(data), config)
        total_steps = max(1, config.epochs * len(loader))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
        )
        self.model.train()
        loss_value, steps = float("nan"), 0
        self.epoch_losses[task.name] = []
        self.epoch_regularizers[task.name] = []
        for epoch in range(config.epochs):
            epoch_total, epoch_extra, epoch_steps = 0.0, 0.0, 0
            bar = tqdm(loader, desc=f"{self.name} {task.name} epoch {epoch + 1}/{config.epochs}", disable=not self.progress, leave=False)
            for batch in bar:
                batch = to_device(batch, self.device)
                outputs = self.outputs(task.name, batch, train=True)
                loss = self.model.heads[task.name].loss(outputs, batch)
                extra = self.regularizer(task, batch, outputs)
                if extra is not None:
                    loss = loss + extra
                    epoch_extra += extra.item()
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{self.name}, task {task.name}: loss became {loss.item()} at step {steps}; lower train.lr")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip:
                    nn.utils.clip_grad_norm_(parameters, config.grad_clip)
                optimizer.step()
                scheduler.step()
                loss_value, steps = loss.item(), steps + 1
                epoch_total, epoch_steps = epoch_total + loss_value, epoch_steps + 1
                bar.set_postfix(loss=f"{loss_value:.3f}")
            self.epoch_losses[task.name].append(epoch_total / max(epoch_steps, 1))
            self.epoch_regularizers[task.name].append(epoch_extra / max(epoch_steps, 1))
        self.model.eval()
        logger.info(
            "%s, task %s: mean loss per epoch %s, of which regulariser %s",
            self.name, task.name,
            ", ".join(f"{value:.4g}" for value in self.epoch_losses[task.name]),
            ", ".join(f"{value:.3g}" for value in self.epoch_regularizers[task.name]),
        )
        self.after_training(task, data)
        seconds = time.perf_counter() - start
        self.task_seconds[task.name] = seconds
        return TaskResult(task.name, loss_value, steps, seconds)

    def end_task(self, task) -> None:
        # Heads are task-specific: a finished task's head is never passed to a later optimiser.
        self.model.heads[task.name].requires_grad_(False)
        self.seen_tasks.append(task.name)
        logger.info("end task %s (%s)", task.name, self.name)

    @torch.no_grad()
    def evaluate(self, task_name: str, data: Dataset) -> tuple[float, dict[str, float]]:
        self.model.eval()
        loader = DataLoader(data, batch_size=self.config.eval_batch_size, shuffle=False, collate_fn=collate)
        head = self.model.heads[task_name]
        parts = []
        for batch in tqdm(loader, desc=f"evaluate {task_name}", disable=not self.progress, leave=False):
            batch = to_device(batch, self.device)
            parts.append(head.collect(self.outputs(task_name, batch), batch))
        return head.score(merge_collected(parts))


def unique_parameters_of(parameters: list[nn.Parameter]) -> list[nn.Parameter]:
    """Drop repeated parameters, keeping the first of each."""
    seen, unique = set(), []
    for parameter in parameters:
        if id(parameter) not in seen:
            seen.add(id(parameter))
            unique.append(parameter)
    return unique
