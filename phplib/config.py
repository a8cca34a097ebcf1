"""Every knob of a phplib run as dataclasses; YAML in, YAML out.

A YAML file mirrors ``RunConfig``: top-level keys ``name``, ``tasks``, ``backbone``, ``stages``,
``data``, ``train``. Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KNOWN_TASKS = ("AVE", "LLP", "AVS", "AVQA")


@dataclass
class BackboneConfig:
    """Backbone choice: the two frozen towers and the local files of their weights."""

    vision_model: str = "tiny-vit"  # open_clip model name (ViT-B-32), shipped config name, or JSON path
    vision_weights: str | None = None  # local open_clip state dict; None keeps random weights
    audio_model: str = "tiny-htsat"  # HTSAT-tiny, tiny-htsat, or JSON path
    audio_weights: str | None = None  # local LAION CLAP checkpoint; None keeps random weights
    # Set HTS-AT's bn0 statistics from the first task's training audio when no audio weights are
    # given, because a random bn0 does not normalise log-mel input.
    calibrate_mel_norm: bool = True
    # "toy" loads the shipped toy-scale weights into tiny-vit and tiny-htsat when vision_weights /
    # audio_weights are not given (see phplib/backbones/pretrained.py); "none" keeps random towers.
    pretrained: str = "toy"


@dataclass
class StageConfig:
    """Placement and size of the three PHP stages."""

    # Letters assigned to the depth groups in order: "SMD" puts the shared adapter (S) shallow,
    # the dynamic prompts (M) in the middle and the task prompts (D) deep. "-" drops a group.
    order: str = "SMD"
    groups: list[list[int]] = field(default_factory=lambda: [[0, 1], [3, 4], [5, 6, 7, 8, 9, 10, 11]])
    tma_tokens: int = 32  # learnable aggregation tokens per direction
    tma_reduction: int = 8  # bottleneck width = token width / reduction
    tma_alpha: float = 0.2  # weight of channel attention
    tma_beta: float = 0.05  # weight of spatial (token) attention
    tma_gamma: float = 0.01  # weight of temporal attention
    tma_after_attention: bool = True  # insert TMA after each S block's attention
    tma_after_mlp: bool = True  # insert TMA after each S block's MLP
    tmdg_bank_size: int = 8  # prompt vectors in each middle block's bank
    tmdg_length: int = 4  # prompt tokens generated per instance and block
    tmdg_hidden: int = 64  # hidden width of the generator MLP
    tmi_length: int = 10  # deep prompt length per block and modality
    tmi_visual_only: bool = False  # reference-code variant: deep prompts on the ViT only
    # False shares one TMDG and one TMI among all tasks (an ablation: no task-specific isolation).
    # Heads stay per task either way.
    task_specific: bool = True


@dataclass
class DataConfig:
    """Data source and decoding settings."""

    source: str = "toyworld"  # "toyworld" generates data under root when missing; "real" reads a dataset
    root: str = "data/toyworld"
    num_segments: int = 10  # one-second segments per clip
    toy: dict[str, Any] = field(default_factory=dict)  # ToyWorldConfig overrides (clip counts, noise, ...)
    on_error: str = "raise"  # "raise" or "skip" for unreadable clips and malformed rows
    cache_dir: str | None = None  # decoded-clip cache written by `python -m phplib prepare`; None decodes every run


@dataclass
class TrainConfig:
    """Optimisation settings shared by every task."""

    seed: int = 0
    epochs: int = 3
    batch_size: int = 16
    eval_batch_size: int = 32
    lr: float = 3e-4  # Adam, cosine decay to zero over each task
    weight_decay: float = 0.0
    grad_clip: float = 0.5
    num_threads: int = 0  # torch CPU threads; 0 keeps torch's default
    device: str = "cpu"
    probe: bool = True  # report each task's score with a head trained on frozen features alone
    head_warmup: bool = True  # start PHP's head from that probe head (linear probing, then tuning)
    probe_epochs: int = 20  # epochs of head training on cached frozen features
    precision: str = "fp32"  # "fp32", or "bf16" for bfloat16 autocast of forward and loss (GPU or CPU)
    compile: bool = False  # wrap the training forward in torch.compile
    num_workers: int = 0  # DataLoader worker processes for training batches
    pin_memory: bool = False  # page-locked training batches, for faster copies to a GPU


@dataclass
class RunConfig:
    """A whole run: a task stream, the model and how to train it."""

    name: str = "toy"
    tasks: list[str] = field(default_factory=lambda: ["AVE", "LLP", "AVQA"])
    output_dir: str = "runs"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    stages: StageConfig = field(default_factory=StageConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid value."""
        for task in self.tasks:
            if task not in KNOWN_TASKS:
                raise ValueError(f"unknown task {task!r} in tasks; choose from {', '.join(KNOWN_TASKS)}")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks lists a task twice: {self.tasks}")
        order = self.stages.order
        if len(order) != len(self.stages.groups):
            raise ValueError(
                f"stages.order {order!r} has {len(order)} letters but stages.groups has "
                f"{len(self.stages.groups)} groups; give one letter (S, M, D or -) per group"
            )
        letters = [letter for letter in order if letter != "-"]
        unknown = sorted({letter for letter in letters if letter not in "SMD"})
        if unknown:
            raise ValueError(
                f"stages.order {order!r} has unknown letter(s) {', '.join(unknown)}; "
                "it must use each of S, M, D at most once, and '-' for a dropped group"
            )
        if len(set(letters)) != len(letters):
            raise ValueError(f"stages.order {order!r} must use each of S, M, D at most once, and '-' for a dropped group")
        seen: set[int] = set()
        for group in self.stages.groups:
            for block in group:
                if block < 0:
                    raise ValueError(f"stages.groups {self.stages.groups}: block {block} is negative; blocks count from 0")
                if block in seen:
                    raise ValueError(
                        f"stages.groups {self.stages.groups}: block {block} is in two depth groups; "
                        "give each block to one group"
                    )
                seen.add(block)
        if self.data.on_error not in ("raise", "skip"):
            raise ValueError(f"data.on_error must be 'raise' or 'skip', not {self.data.on_error!r}")
        if self.data.source not in ("toyworld", "real"):
            raise ValueError(f"data.source must be 'toyworld' or 'real', not {self.data.source!r}")
        if self.data.toy:
            from dataclasses import fields

            from phplib.data.toyworld import ToyWorldConfig

            known = {item.name for item in fields(ToyWorldConfig)}
            unknown_keys = sorted(set(self.data.toy) - known)
            if unknown_keys:
                raise ValueError(
                    f"unknown key(s) data.toy.{', data.toy.'.join(unknown_keys)}; "
                    f"data.toy takes: {', '.join(sorted(known))}"
                )
        if not self.tasks:
            raise ValueError("tasks is empty; list at least one of " + ", ".join(KNOWN_TASKS))
        train = self.train
        for name in ("epochs", "batch_size", "eval_batch_size", "probe_epochs"):
            if getattr(train, name) < 1:
                raise ValueError(f"train.{name} must be at least 1, got {getattr(train, name)}")
        for name in ("lr",):
            if not getattr(train, name) > 0:
                raise ValueError(f"train.{name} must be positive, got {getattr(train, name)}")
        if train.weight_decay < 0 or train.grad_clip < 0 or train.num_threads < 0:
            raise ValueError("train.weight_decay, train.grad_clip and train.num_threads must not be negative")
        if train.precision not in ("fp32", "bf16"):
            raise ValueError(f"train.precision must be 'fp32' or 'bf16', not {train.precision!r}")
        if train.num_workers < 0:
            raise ValueError(f"train.num_workers must not be negative, got {train.num_workers}")
        if not (train.device == "cpu" or train.device.startswith("cuda")):
            raise ValueError(f"train.device must be 'cpu' or 'cuda[:N]', not {train.device!r}")
        if self.data.num_segments < 1:
            raise ValueError(f"data.num_segments must be at least 1, got {self.data.num_segments}")
        from phplib.backbones.pretrained import check_pretrained_choice

        check_pretrained_choice(self.backbone)
        stages = self.stages
        for name in ("tma_tokens", "tma_reduction", "tmdg_bank_size", "tmdg_length", "tmdg_hidden", "tmi_length"):
            if getattr(stages, name) < 1:
                raise ValueError(f"stages.{name} must be at least 1, got {getattr(stages, name)}")


def _coerce(value: Any, annotation: str, where: str) -> Any:
    """Check ``value`` against a field's annotation; accept the forms YAML and --set produce.

    YAML 1.1 reads ``3e-3`` (no dot) as a string, so numeric strings are converted; a single
    string given for a list of strings becomes a one-element list.
    """
    kind = annotation.replace(" ", "")
    if value is None and "None" in kind:
        return None
    if kind.startswith("bool"):
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where} must be true or false, got {value!r}")
    if kind.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return value
    if kind.startswith("float"):
        if isinstance(value, bool):
            raise ValueError(f"{where} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where} must be a number, got {value!r}") from None
    if kind.startswith("str"):
        if isinstance(value, str):
            return value
        raise ValueError(f"{where} must be a string, got {value!r}")
    if kind == "list[str]":
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise ValueError(f"{where} must be a list of names, got {value!r}")
    if kind == "list[list[int]]":
        if isinstance(value, list) and all(isinstance(g, list) and all(isinstance(i, int) for i in g) for g in value):
            return value
        raise ValueError(f"{where} must be a list of lists of block indices, got {value!r}")
    if kind.startswith("dict"):
        if isinstance(value, dict):
            return value
        raise ValueError(f"{where} must be a mapping, got {value!r}")
    return value


def _from_dict(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown key(s) in {where}: {', '.join(unknown)}; known keys: {', '.join(fields)}")
    kwargs = {}
    for name, value in values.items():
        default = fields[name].default_factory() if fields[name].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            kwargs[name] = _from_dict(type(default), value or {}, f"{where}.{name}")
        else:
            kwargs[name] = _coerce(value, str(fields[name].type), f"{where}.{name}".removeprefix("config."))
    return cls(**kwargs)


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    """Build and validate a ``RunConfig`` from nested dicts (as read from YAML)."""
    config = _from_dict(RunConfig, values or {}, "config")
    config.validate()
    return config


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML run config; ``overrides`` maps dotted keys (``train.epochs``) to values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        with path.open(encoding="utf-8") as handle:
            values = yaml.safe_load(handle) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from error
    for dotted, value in (overrides or {}).items():
        node = values
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        return config_from_dict(values)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """Return the config as plain nested dicts."""
    return dataclasses.asdict(config)


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write the config as YAML; reading it back gives an equal config."""
    with Path(path).open("w", encoding="utf-8") as handle:
        yaml.safe_dump(config_to_dict(config), handle, sort_keys=False)
