"""The learner contract and PHP's learner: begin_task, train_task, end_task, evaluate.

After each task the stream evaluates every task seen so far, with its task identity, and fills
row t of the accuracy matrix ``R`` (see ``phplib.metrics.incremental``).
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, Subset
from tqdm.auto import tqdm

from phplib.config import TrainConfig
from phplib.continual import distributed
from phplib.model import PHPModel

logger = logging.getLogger(__name__)

MEDIA_KEYS = ("video", "audio")


class PreparedData(Dataset):
    """A task split with its tower inputs computed once (normalised frames, folded log-mel).

    Neither input transform trains, so computing them once per run removes the log-mel
    front-end and the frame normalisation from every epoch. The other fields of each item
    (labels, questions) are kept as they are.
    """

    def __init__(self, dataset: Dataset, model: PHPModel, batch_size: int = 32, description: str = "", progress: bool = True):
        self.frames: list[torch.Tensor] = []
        self.spectrograms: list[torch.Tensor] = []
        self.fields: list[dict] = []
        indices = range(len(dataset))
        for start in tqdm(range(0, len(dataset), batch_size), desc=f"prepare {description}", disable=not progress, leave=False):
            items = [dataset[i] for i in indices[start:start + batch_size]]
            video = torch.stack([item["video"] for item in items])
            audio = torch.stack([torch.as_tensor(item["audio"]) for item in items])
            frames, spectrogram = model.prepare_inputs(video, audio)
            self.frames.extend(frames)
            self.spectrograms.extend(spectrogram)
            self.fields.extend({k: v for k, v in item.items() if k not in MEDIA_KEYS} for item in items)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict:
        return {"frames": self.frames[index], "spectrogram": self.spectrograms[index], **self.fields[index]}


def collate(items: list[dict]) -> dict:
    """Stack tensors and numbers; keep strings and other values as lists."""
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(values[0], (bool, int, float)):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch


class ClipGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches that keep the items of one clip together, so each clip is encoded once per batch.

    Items are grouped by ``video_id`` (several MUSIC-AVQA questions share a video). Each epoch the
    groups are shuffled with ``generator`` and packed into batches of at most ``batch_size`` items;
    a group larger than a batch is split.
    """

    def __init__(self, video_ids: list[str], batch_size: int, generator: torch.Generator):
        self.batch_size = batch_size
        self.generator = generator
        groups: dict[str, list[int]] = {}
        for index, video_id in enumerate(video_ids):
            groups.setdefault(video_id, []).append(index)
        self.groups = list(groups.values())

    def _batches(self, order: list[int]) -> list[list[int]]:
        batches, current = [], []
        for group_index in order:
            for index in self.groups[group_index]:
                if len(current) == self.batch_size:
                    batches.append(current)
                    current = []
                current.append(index)
        if current:
            batches.append(current)
        return batches

    def __iter__(self):
        order = torch.randperm(len(self.groups), generator=self.generator).tolist()
        yield from self._batches(order)

    def __len__(self) -> int:
        return len(self._batches(list(range(len(self.groups)))))


def to_device(batch: dict, device: torch.device | str) -> dict:
    non_blocking = torch.device(device).type == "cuda"  # overlaps copies from pinned memory with compute
    return {k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def autocast_context(config: TrainConfig, device: torch.device):
    """Return the autocast context of ``train.precision``: bf16 autocast, or a no-op for fp32."""
    if config.precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def merge_collected(parts: list[dict]) -> dict:
    """Concatenate the per-batch outputs of ``TaskHead.collect``."""
    merged = {}
    for key in parts[0]:
        values = [part[key] for part in parts]
        merged[key] = torch.cat(values) if isinstance(values[0], torch.Tensor) else [v for chunk in values for v in chunk]
    return merged


@dataclass
class TaskResult:
    """Outcome of training one task."""

    name: str
    final_loss: float
    steps: int
    seconds: float


class Learner:
    """The contract every continual learner in phplib follows."""

    def begin_task(self, task) -> None:
        raise NotImplementedError

    def train_task(self, task, data: Dataset) -> TaskResult:
        raise NotImplementedError

    def end_task(self, task) -> None:
        raise NotImplementedError

    def evaluate(self, task_name: str, data: Dataset) -> tuple[float, dict[str, float]]:
        raise NotImplementedError


class PHPLearner(Learner):
    """Trains TMA (shared) and the current task's TMDG, TMI and head; earlier tasks' modules stay fixed."""

    def __init__(self, model: PHPModel, config: TrainConfig, progress: bool = True):
        self.model = model
        self.config = config
        self.progress = progress
        self.device = torch.device(config.device)
        self.model.to(self.device)

    def begin_task(self, task) -> None:
        head = task.make_head(self.model)
        self.model.add_task(task.name, head.to(self.device))
        self.model.set_task(task.name)
        report = self.model.parameter_report(task.name)
        stored = sum(self.model.parameter_report(name).task_trainable for name in self.model.heads)
        logger.info(
            "begin task %s: frozen backbone %s parameters, trainable %s (shared TMA %s + task-specific %s), "
            "%d trainable tensors",
            task.name,
            f"{report.backbone_frozen:,}",
            f"{report.trainable:,}",
            f"{report.shared_trainable:,}",
            f"{report.task_trainable:,}",
            len(report.trainable_names),
        )
        logger.info(
            "parameters at the start of %s:\n%s",
            task.name,
            "\n".join(
                f"  {label:38s} {value:>12,}"
                for label, value in (
                    ("trainable now (shared + this task)", report.trainable),
                    ("stored per task, all tasks so far", stored),
                    ("frozen backbone", report.backbone_frozen),
                )
            ),
        )
        logger.debug("trainable tensors for %s: %s", task.name, ", ".join(report.trainable_names))

    def train_task(self, task, data: Dataset) -> TaskResult:
        import time

        start = time.perf_counter()
        config = self.config
        parameters = self.model.trainable_parameters(task.name)
        optimizer = torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
        generator = torch.Generator().manual_seed(config.seed)
        loader = self._train_loader(data, generator)
        total_steps = max(1, config.epochs * len(loader))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
        )
        # Under torchrun the forward goes through DDP, wrapped here rather than in begin_task so that
        # its broadcast from rank 0 includes the head the runner warmed up after begin_task.
        forward = distributed.wrap_trainable(self.model, self.device)
        if config.compile:
            forward = torch.compile(forward)
        self.model.train()
        loss_value, steps = float("nan"), 0
        for epoch in range(config.epochs):
            bar = tqdm(loader, desc=f"{task.name} epoch {epoch + 1}/{config.epochs}", disable=not self.progress, leave=False)
            for batch in bar:
                batch = to_device(batch, self.device)
                with autocast_context(config, self.device):
                    outputs = forward(batch["frames"], batch["spectrogram"], task.name, batch)
                    loss = self.model.heads[task.name].loss(outputs, batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"task {task.name}: loss became {loss.item()} at step {steps}; lower train.lr")
                optimizer.zero_grad(set_to_none=True)
                (loss * distributed.gradient_weight(len(batch["frames"]), self.device)).backward()
                if config.grad_clip:
                    nn.utils.clip_grad_norm_(parameters, config.grad_clip)
                optimizer.step()
                scheduler.step()
                loss_value, steps = loss.item(), steps + 1
                bar.set_postfix(loss=f"{loss_value:.3f}")
        self.model.eval()
        return TaskResult(task.name, loss_value, steps, time.perf_counter() - start)

    def end_task(self, task) -> None:
        # The task's TMDG, TMI and head are never passed to a later optimiser, so they keep the
        # values they have now; TMA goes on learning with every new task.
        for module in self.model.task_owned_modules(task.name):
            module.requires_grad_(False)
        logger.info("end task %s", task.name)

    def _train_loader(self, data: Dataset, generator: torch.Generator) -> DataLoader:
        """Shuffled training batches; under torchrun, this rank's share of each global batch."""
        config = self.config
        options = dict(collate_fn=collate, num_workers=config.num_workers, pin_memory=config.pin_memory)
        video_ids = [fields.get("video_id") for fields in data.fields] if hasattr(data, "fields") else []
        grouped = bool(video_ids) and None not in video_ids and len(set(video_ids)) < len(video_ids)
        if grouped:
            global_batches = ClipGroupedBatchSampler(video_ids, config.batch_size, generator)
        else:
            global_batches = BatchSampler(RandomSampler(data, generator=generator), config.batch_size, drop_last=False)
        if distributed.is_active():
            ids = video_ids if grouped else [str(index) for index in range(len(data))]
            global_batches = distributed.DistributedClipGroupedBatchSampler(
                global_batches, ids, distributed.rank(), distributed.world_size()
            )
        # The loader draws its worker base seed from ``generator`` as DataLoader(shuffle=True) does.
        return DataLoader(data, batch_sampler=global_batches, generator=None if grouped else generator, **options)

    @torch.no_grad()
    def evaluate(self, task_name: str, data: Dataset) -> tuple[float, dict[str, float]]:
        """Score ``task_name`` on ``data``; under torchrun each rank scores a contiguous share and all gather the rest."""
        self.model.eval()
        if distributed.is_active():
            data = Subset(data, distributed.shard_range(len(data), distributed.rank(), distributed.world_size()))
        loader = DataLoader(data, batch_size=self.config.eval_batch_size, shuffle=False, collate_fn=collate)
        head = self.model.heads[task_name]
        parts = []
        for batch in tqdm(loader, desc=f"evaluate {task_name}", disable=not self.progress, leave=False):
            batch = to_device(batch, self.device)
            with autocast_context(self.config, self.device):
                outputs = self.model(batch["frames"], batch["spectrogram"], task_name, batch)
            collected = head.collect(outputs, batch)
            # Scores are computed in NumPy, which has no bfloat16.
            parts.append({k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in collected.items()})
        if distributed.is_active():
            parts = [part for rank_parts in distributed.all_gather_objects(parts) for part in rank_parts]
        return head.score(merge_collected(parts))
