"""The shipped toy-scale weights, and which weights file each tower of a config loads.

``backbone.pretrained: toy`` (the default) gives the tiny towers (``tiny-vit``, ``tiny-htsat``) the
weights that ``python -m phplib pretrain --scale toy`` wrote into ``pretrained/toy/`` next to this
file. They load through the same functions as paper-scale weights: an open_clip CLIP state dict for
the ViT and a LAION-CLAP-layout checkpoint for HTS-AT, whose ``bn0`` carries the log-mel
normalisation. ``pretrained: none`` keeps random towers unless ``vision_weights``/``audio_weights``
name files.
"""

from __future__ import annotations

import functools

from pathlib import Path

# NOTE: on the toy stream these towers score below random towers (seed 0: frozen-feature probes
# 0.75/0.28/0.51 against 0.80/0.46/0.62 on AVE/LLP/AVQA; benchmarks/README.md), probably because the tiny CLIP
# learned colour and size but not shape. pretrained: none gives the random towers back.
TOY_WEIGHTS_DIR = Path(__file__).resolve().parent / "pretrained" / "toy"
TOY_VISION_WEIGHTS = TOY_WEIGHTS_DIR / "tiny-vit-toy-clip.pt"
TOY_AUDIO_WEIGHTS = TOY_WEIGHTS_DIR / "tiny-htsat-toy-clap.pt"
TOY_VISION_MODEL = "tiny-vit"
TOY_AUDIO_MODEL = "tiny-htsat"
PRETRAINED_CHOICES = ("toy", "none")
REGENERATE_COMMAND = "python -m phplib pretrain --scale toy"


def check_pretrained_choice(backbone) -> None:
    """Raise ``ValueError`` when ``backbone.pretrained`` is unknown or cannot serve a tower of the config.

    With ``toy``, a tower without its own weights file must be the tiny config the shipped
    weights were trained for.
    """
    if backbone.pretrained not in PRETRAINED_CHOICES:
        raise ValueError(
            f"backbone.pretrained must be one of {', '.join(PRETRAINED_CHOICES)}, not {backbone.pretrained!r}"
        )
    if backbone.pretrained != "toy":
        return
    towers = (
        ("vision", backbone.vision_model, backbone.vision_weights, TOY_VISION_MODEL),
        ("audio", backbone.audio_model, backbone.audio_weights, TOY_AUDIO_MODEL),
    )
    for tower, model, weights, toy_model in towers:
        if weights is None and str(model) != toy_model:
            raise ValueError(
                f"backbone.pretrained: toy ships weights only for {toy_model}, but backbone.{tower}_model is "
                f"{model!r}. Give backbone.{tower}_weights (a local weights file for {model}), or set "
                "backbone.pretrained: none to keep a randomly initialised tower."
            )


def resolve_backbone_weights(backbone) -> tuple[str | None, str | None]:
    """Return the ``(vision, audio)`` weights files a ``BackboneConfig`` loads; None keeps random weights.

    A weights file named in the config always wins; otherwise ``pretrained: toy`` supplies the
    shipped file of a tiny tower.
    """
    check_pretrained_choice(backbone)
    vision, audio = backbone.vision_weights, backbone.audio_weights
    if backbone.pretrained == "toy":
        vision = vision if vision is not None else str(_shipped(TOY_VISION_WEIGHTS))
        audio = audio if audio is not None else str(_shipped(TOY_AUDIO_WEIGHTS))
    return vision, audio


def _shipped(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"shipped toy weights not found: {path}. Reinstall phplib, or regenerate them with "
            f"`{REGENERATE_COMMAND}`, or set backbone.pretrained: none to use random towers."
        )
    stat = path.stat()
    _check_shipped_once(path, stat.st_size, stat.st_mtime_ns)
    return path


@functools.lru_cache(maxsize=None)
def _check_shipped_once(path: Path, size: int, mtime_ns: int) -> None:
    """Check a shipped file once per version (size and mtime are part of the cache key)."""
    _check_listed_sha256(path)


def _listed_sha256(directory: Path) -> tuple[Path, dict[str, str]]:
    """Read ``directory/SHA256SUMS``; return its path and ``{file name: sha256}``."""
    from phplib.pretrain.train import CHECKSUM_FILE

    listing = directory / CHECKSUM_FILE
    if not listing.is_file():
        raise FileNotFoundError(f"checksum file not found: {listing}; reinstall phplib or rerun `{REGENERATE_COMMAND}`")
    checksums = {}
    for line in listing.read_text(encoding="utf-8").splitlines():
        if line.strip():
            checksum, name = line.split(maxsplit=1)
            checksums[name] = checksum
    return listing, checksums


def _check_listed_sha256(path: Path) -> str:
    """Compare ``path`` with its line in the SHA256SUMS beside it; return its sha256 or raise ``ValueError``."""
    from phplib.pretrain.train import sha256_of

    listing, checksums = _listed_sha256(path.parent)
    actual = sha256_of(path)
    if checksums.get(path.name) != actual:
        raise ValueError(
            f"{path} has sha256 {actual}, but {listing} lists {checksums.get(path.name)}. The file is damaged "
            f"or was regenerated without updating SHA256SUMS; restore it (git checkout) or rerun `{REGENERATE_COMMAND}`."
        )
    return actual


def verify_toy_weights(directory: str | Path = TOY_WEIGHTS_DIR) -> dict[str, str]:
    """Check every file listed in ``directory/SHA256SUMS``; return ``{name: sha256}`` or raise ``ValueError``."""
    directory = Path(directory)
    _, checksums = _listed_sha256(directory)
    return {name: _check_listed_sha256(directory / name) for name in checksums}
