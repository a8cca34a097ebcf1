"""Training on several processes with ``torch.distributed``: process group, DDP wrapping, sampling, gathering.

``torchrun --nproc_per_node N -m phplib run --config ...`` starts N processes that each run the
whole stream. Every process builds the same model from the same seed and reads the same data.
Training batches are split between the processes by whole clips, gradients are averaged by
``DistributedDataParallel`` (DDP), evaluation is split and gathered so every process fills the
same accuracy matrix, and only rank 0 writes files and logs at INFO level.

Without torchrun (no ``WORLD_SIZE`` in the environment, or ``WORLD_SIZE=1``) every helper here
is a no-op, so one process runs exactly as before.

NOTE: each rank still computes the tower inputs of every task (``PreparedData``) and trains the
frozen-feature probe head on the whole task. Both are deterministic and far cheaper than training,
but they do not get faster with more processes.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
from datetime import timedelta
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler

logger = logging.getLogger(__name__)


def launched_with_torchrun() -> bool:
    """Return True when torchrun (or another launcher) set ``WORLD_SIZE`` above 1."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_active() -> bool:
    """Return True when a process group of more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def is_main_process() -> bool:
    """Return True on rank 0, and in a single-process run."""
    return rank() == 0


def init_from_environment(device: str = "cpu", timeout_minutes: float = 30.0) -> bool:
    """Initialise the default process group from torchrun's environment; return True when distributed.

    The backend is NCCL for CUDA devices and gloo for the CPU. Calling it again, or without
    torchrun, does nothing. Non-zero ranks log warnings and errors only, so the console and
    ``run.log`` carry one copy of every INFO line.
    """
    if not launched_with_torchrun():
        return False
    if is_active():
        return True
    for variable in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if variable not in os.environ:
            raise RuntimeError(
                f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {variable} is not set; start the run with "
                "torchrun --nproc_per_node N -m phplib run ..., which sets all of them"
            )
    use_cuda = device.startswith("cuda")
    if use_cuda:
        if not torch.cuda.is_available():
            raise ValueError(f"train.device is {device!r} but no CUDA device is available; set train.device=cpu")
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=timeout_minutes))
    atexit.register(_destroy)
    if not is_main_process():
        logging.getLogger("phplib").setLevel(logging.WARNING)
    logger.info("process group: %d processes, backend %s", world_size(), dist.get_backend())
    return True


def _destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_active():
        dist.barrier()


def broadcast_object(value: Any) -> Any:
    """Return rank 0's ``value`` on every rank (for example a run name built from the clock)."""
    if not is_active():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_gather_objects(value: Any) -> list[Any]:
    """Return the list of every rank's ``value``, in rank order, on every rank."""
    if not is_active():
        return [value]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Let rank 0 run the block before the others, for work that writes shared files (the toy world)."""
    if not is_main_process():
        barrier()
    try:
        yield
    finally:
        if is_main_process():
            barrier()


def wrap_trainable(model: nn.Module, device: torch.device) -> nn.Module:
    """Wrap ``model`` in DDP over the parameters that require gradients now; return ``model`` when not distributed.

    DDP ignores every frozen parameter (both towers, earlier tasks' modules) and every buffer,
    so it neither broadcasts the 119 M frozen tower weights nor synchronises the towers'
    batch-norm statistics on every forward. The set of trainable parameters changes from task to
    task, so the learner wraps again for each task.

    ``find_unused_parameters=True``: after each forward DDP walks the autograd graph and marks
    the trainable parameters that the step did not use as ready, instead of waiting for their
    gradients forever, for example a head branch that a batch does not reach. The toy heads use
    every parameter in every step, so torch warns once per task that the walk found nothing. ``static_graph=True`` would save that walk, but it assumes the used set never changes
    between steps, and a head is free to use different parameters for different batches.
    """
    if not is_active():
        return model
    ignored = [name for name, parameter in model.named_parameters() if not parameter.requires_grad]
    ignored += [name for name, _ in model.named_buffers()]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, ignored)
    device_ids = None
    if device.type == "cuda":
        device_ids = [device.index if device.index is not None else torch.cuda.current_device()]
    return DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=True
    )


def gradient_weight(local_items: int, device: torch.device) -> float:
    """Factor for this rank's mean loss so that DDP's gradient average equals the global batch mean.

    DDP averages the ranks' gradients with equal weights, but whole-clip splits can give ranks
    unequal item counts. Scaling rank r's mean loss by ``N * n_r / sum(n)`` makes the average the
    mean over every item of the global batch, as on one process, for losses that are means over
    items. Costs one all-reduce of a scalar per step.
    """
    if not is_active():
        return 1.0
    count = torch.tensor([float(local_items)], device=device)
    dist.all_reduce(count)
    return world_size() * local_items / count.item()


def split_batch_by_groups(batch: list[int], group_of: dict[int, int], ranks: int) -> list[list[int]]:
    """Split one global batch into ``ranks`` parts that keep each clip's items together.

    Groups are dealt in order to the part with the fewest items so far (ties go to the lowest
    rank), so the parts differ in size by at most one group. A part left empty because the batch
    has fewer groups than ranks receives a copy of the last group: DDP needs every rank to take
    every step, so that group counts twice in that step's average gradient.
    """
    groups: list[list[int]] = []
    for index in batch:
        if groups and group_of[groups[-1][-1]] == group_of[index]:
            groups[-1].append(index)
        else:
            groups.append([index])
    parts: list[list[int]] = [[] for _ in range(ranks)]
    for group in groups:
        smallest = min(range(ranks), key=lambda r: (len(parts[r]), r))
        parts[smallest].extend(group)
    for part in parts:
        if not part:
            part.extend(groups[-1])
    return parts


class DistributedClipGroupedBatchSampler(Sampler[list[int]]):
    """This rank's share of each global batch that the single-process learner would draw.

    ``batch_sampler`` yields the global batches (``ClipGroupedBatchSampler``, or a shuffled
    ``BatchSampler`` when no clip repeats), so a run on N processes trains on the same data per
    step as a run on one. ``video_ids[i]`` names the clip of item i. Every global batch is split between
    the ranks by whole clips (``split_batch_by_groups``). All ranks seed the global sampler's
    generator alike, so they draw the same batches, and every rank yields one batch per global
    batch, so all ranks take the same number of steps.
    """

    def __init__(self, batch_sampler: Sampler[list[int]], video_ids: list[str], rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
        self.batch_sampler = batch_sampler
        numbers: dict[str, int] = {}
        self.group_of = {index: numbers.setdefault(video_id, len(numbers)) for index, video_id in enumerate(video_ids)}
        self.rank = rank
        self.world_size = world_size

    def __iter__(self):
        for batch in self.batch_sampler:
            yield split_batch_by_groups(batch, self.group_of, self.world_size)[self.rank]

    def __len__(self) -> int:
        return len(self.batch_sampler)


def shard_range(length: int, rank: int, world_size: int) -> range:
    """Contiguous share of ``range(length)`` for ``rank``; concatenated in rank order they give back the whole range."""
    per_rank, extra = divmod(length, world_size)
    start = rank * per_rank + min(rank, extra)
    return range(start, start + per_rank + (1 if rank < extra else 0))
