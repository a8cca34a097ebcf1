"""Read local weight files and match them against a model, with errors that name the file and the fix."""

from __future__ import annotations

import logging
import types
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)


class WeightsError(ValueError):
    """A weights file that is missing, unreadable or does not fit the model it is loaded into."""


def load_state_dict_file(path: str | Path, how_to_obtain: str) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.pt``/``.bin``/``.ckpt`` (``weights_only=True``) or ``.safetensors``.

    A dict holding ``state_dict`` or ``model`` is unwrapped, and a ``module.`` prefix (left by
    DataParallel) is stripped. ``how_to_obtain`` is appended to the error for a missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}. To obtain it, {how_to_obtain}.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch and safetensors raise many types for a bad file
        raise WeightsError(
            f"cannot read weights file {path}: it is not a torch.save checkpoint (.pt/.bin/.ckpt) or a "
            "safetensors file, or it is truncated. Save a state dict with torch.save; a TorchScript "
            f"archive must be converted to a state dict first. (Reader error: {type(error).__name__}: {error})"
        ) from error
    for wrapper_key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper_key), dict):
            state = state[wrapper_key]
            break
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise WeightsError(f"weights file {path} does not contain a state dict of tensors")
    return {key.removeprefix("module."): value for key, value in state.items()}


def match_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str | Path, model_description: str) -> None:
    """Load ``state`` into ``model`` strictly; on any mismatch raise ``WeightsError`` listing it."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [
        f"{key}: file {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(state))
        if state[key].shape != expected[key].shape
    ]
    if missing or unexpected or wrong_shape:
        def preview(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")

        details = []
        if wrong_shape:
            details.append(f"shape mismatches: {preview(wrong_shape)}")
        if missing:
            details.append(f"missing keys: {preview(missing)}")
        if unexpected:
            details.append(f"unexpected keys: {preview(unexpected)}")
        raise WeightsError(
            f"weights file {source} does not match the {model_description} "
            f"({getattr(model, 'phplib_name', type(model).__name__)}): {'; '.join(details)}. "
            "Check that the config names the architecture these weights were trained with."
        )
    model.load_state_dict(state, strict=True)


def freeze(module: nn.Module) -> list[str]:
    """Freeze ``module``: no gradients, eval mode now and after any later ``.train()`` call.

    Returns the names of the parameters it froze. Dropout, drop-path and batch-norm statistics
    therefore stay in inference behaviour even while the adapters around the tower train.
    """
    frozen = []
    for name, parameter in module.named_parameters():
        parameter.requires_grad_(False)
        frozen.append(name)
    module.eval()
    original_train = type(module).train

    def train_stays_eval(self: nn.Module, mode: bool = True) -> nn.Module:
        return original_train(self, False)

    module.train = types.MethodType(train_stays_eval, module)
    module.phplib_frozen = True
    logger.debug("froze %d parameters of %s", len(frozen), type(module).__name__)
    return frozen
