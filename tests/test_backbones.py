"""Frozen towers: block loops equal the towers' own forward, prefix attention, freezing, weight files."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import open_clip
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from phplib.backbones.clap_audio import (
    build_clap_audio,
    htsat_embed,
    htsat_forward_blockwise,
    htsat_frontend,
    swin_block_attention,
    swin_blocks,
)
from phplib.backbones.clip_vision import (
    build_clip_vision,
    resolve_vision_config,
    vit_block_attention,
    vit_embed,
    vit_forward_blockwise,
)
from phplib.backbones.pairing import pair_blocks, pairing_table
from phplib.backbones.weights import WeightsError, freeze


@pytest.fixture(scope="module")
def visual():
    torch.manual_seed(0)
    return build_clip_vision("tiny-vit").eval()


@pytest.fixture(scope="module")
def audio():
    torch.manual_seed(0)
    return build_clap_audio("tiny-htsat").eval()


def test_vit_blockwise_equals_tower(visual):
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(vit_forward_blockwise(visual, images), visual(images), atol=1e-5)


def test_htsat_blockwise_equals_tower(audio):
    waveform = torch.randn(3, 16000) * 0.1
    with torch.no_grad():
        expected = audio({"waveform": waveform}, device="cpu")["embedding"]
        assert torch.allclose(htsat_forward_blockwise(audio, waveform), expected, atol=1e-5)


def naive_attention(q, k, v, heads):
    """Plain softmax attention per head, for comparison."""
    def split(x):
        return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)

    q, k, v = split(q), split(k), split(v)
    weights = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(-1)
    return (weights @ v).transpose(1, 2).flatten(2)


def test_vit_prefix_matches_naive_attention(visual):
    block = visual.transformer.resblocks[5]
    x = vit_embed(visual, torch.randn(2, 3, 64, 64))
    prefix_key, prefix_value = torch.randn(4, 64), torch.randn(4, 64)
    hidden = block.ln_1(x)
    q, k, v = F.linear(hidden, block.attn.in_proj_weight, block.attn.in_proj_bias).chunk(3, -1)
    k = torch.cat([prefix_key.expand(2, -1, -1), k], 1)
    v = torch.cat([prefix_value.expand(2, -1, -1), v], 1)
    expected = x + block.attn.out_proj(naive_attention(q, k, v, block.attn.num_heads))
    with torch.no_grad():
        got = vit_block_attention(block, x, (prefix_key, prefix_value))
        assert torch.allclose(got, expected, atol=1e-5)
        assert not torch.allclose(got, vit_block_attention(block, x), atol=1e-3)


def test_swin_prefix_reaches_every_window(audio):
    """A prefix whose values are huge and keys dominate moves every token, in every window."""
    block, _ = swin_blocks(audio)[0]
    x = htsat_embed(audio, htsat_frontend(audio, torch.randn(2, 16000) * 0.1))
    with torch.no_grad():
        plain = swin_block_attention(block, x)
        zero_length = swin_block_attention(block, x, (torch.zeros(0, 32), torch.zeros(0, 32)))
        prefix = (torch.zeros(1, 32), torch.ones(1, 32) * 100.0)
        moved = swin_block_attention(block, x, prefix)
    assert torch.allclose(plain, zero_length, atol=1e-6)
    change = (moved - plain).abs().amax(dim=-1)  # [B, tokens]
    assert bool((change > 1.0).all())


def test_swin_per_instance_prefix_stays_in_its_clip(audio):
    block, _ = swin_blocks(audio)[1]  # a shifted-window block
    x = htsat_embed(audio, htsat_frontend(audio, torch.randn(2, 16000) * 0.1))
    keys = torch.zeros(2, 3, 32)
    values = torch.zeros(2, 3, 32)
    values[1] = 50.0  # only the second clip's prefix carries a signal
    with torch.no_grad():
        plain = swin_block_attention(block, x)
        moved = swin_block_attention(block, x, (keys, values))
    assert torch.allclose(moved[0], swin_block_attention(block, x[:1], (keys[:1], values[:1]))[0], atol=1e-5)
    assert (moved[1] - plain[1]).abs().max() > 1.0


def test_freeze_keeps_eval_mode(audio):
    tower = build_clap_audio("tiny-htsat")
    names = freeze(tower)
    assert len(names) == len(list(tower.parameters()))
    assert all(not p.requires_grad for p in tower.parameters())
    container = torch.nn.Sequential(tower)
    container.train()
    assert container.training
    assert not tower.training
    assert all(not m.training for m in tower.modules())


def test_pairing_table_has_twelve_blocks(visual, audio):
    pairs = pair_blocks(visual, audio)
    table = pairing_table(pairs)
    assert len(pairs) == 12
    assert list(table["HTS-AT stage.block"])[:4] == ["0.0", "0.1", "1.0", "1.1"]
    assert [p.index for p in pairs if p.audio_downsample is not None] == [1, 3, 9]
    assert pairs[11].audio_width == 256


def test_pairing_rejects_unequal_depths(audio, tmp_path):
    config = tmp_path / "six.json"
    config.write_text('{"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 6, "width": 32, "head_width": 16, "patch_size": 8}}')
    with pytest.raises(ValueError, match="6 blocks"):
        pair_blocks(build_clip_vision(config), audio)


def tiny_clip_model():
    _, config = resolve_vision_config("tiny-vit")
    text = dict(context_length=8, vocab_size=50, width=32, heads=2, layers=1)
    return open_clip.CLIP(embed_dim=config["embed_dim"], vision_cfg=config["vision_cfg"], text_cfg=text)


@pytest.mark.parametrize("suffix", [".pt", ".bin", ".safetensors"])
def test_clip_weights_load_from_full_clip_state_dict(tmp_path, suffix):
    torch.manual_seed(1)
    clip = tiny_clip_model().eval()
    path = tmp_path / f"clip{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(path))
    else:
        torch.save(clip.state_dict(), path)
    tower = build_clip_vision("tiny-vit", weights=path).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(tower(images), clip.encode_image(images), atol=1e-5)


def test_clip_weights_missing_file_names_it(tmp_path):
    with pytest.raises(WeightsError, match=r"not found: .*absent\.pt.*To obtain it"):
        build_clip_vision("tiny-vit", weights=tmp_path / "absent.pt")


def test_clip_weights_wrong_architecture(tmp_path):
    other = tmp_path / "narrow.json"
    other.write_text('{"embed_dim": 64, "vision_cfg": {"image_size": 64, "layers": 12, "width": 32, "head_width": 16, "patch_size": 8}}')
    path = tmp_path / "narrow.pt"
    torch.save(build_clip_vision(other).state_dict(), path)
    with pytest.raises(WeightsError, match=r"narrow\.pt does not match .*shape mismatches"):
        build_clip_vision("tiny-vit", weights=path)


def test_clip_weights_garbage_file(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        build_clip_vision("tiny-vit", weights=path)


def clap_checkpoint(tower, with_position_ids: bool) -> dict:
    """A checkpoint laid out like LAION's: DataParallel prefix, audio and text branches, extra fields."""
    state = {f"module.audio_branch.{k}": v for k, v in tower.state_dict().items()}
    state["module.audio_projection.0.weight"] = torch.randn(8, 256)
    state["module.text_branch.embeddings.word_embeddings.weight"] = torch.randn(10, 8)
    if with_position_ids:
        state["module.text_branch.embeddings.position_ids"] = torch.arange(10).unsqueeze(0)
    return {"epoch": 45, "state_dict": state}


@pytest.mark.parametrize("with_position_ids", [True, False])
def test_clap_checkpoint_loads_audio_branch(tmp_path, with_position_ids):
    torch.manual_seed(2)
    source = build_clap_audio("tiny-htsat").eval()
    path = tmp_path / "clap.pt"
    torch.save(clap_checkpoint(source, with_position_ids), path)
    tower = build_clap_audio("tiny-htsat", weights=path).eval()
    waveform = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        assert torch.allclose(htsat_forward_blockwise(tower, waveform), htsat_forward_blockwise(source, waveform))


def test_clap_checkpoint_without_audio_keys(tmp_path):
    path = tmp_path / "text_only.pt"
    torch.save({"state_dict": {"module.text_branch.pooler.dense.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(WeightsError, match=r"text_only\.pt has no audio-branch keys"):
        build_clap_audio("tiny-htsat", weights=path)


def test_clap_fusion_checkpoint_names_setting(tmp_path):
    tower = build_clap_audio("tiny-htsat")
    checkpoint = clap_checkpoint(tower, True)
    checkpoint["state_dict"]["module.audio_branch.fusion_model.local_att.0.weight"] = torch.zeros(1)
    path = tmp_path / "fusion.pt"
    torch.save(checkpoint, path)
    with pytest.raises(WeightsError, match="enable_fusion"):
        build_clap_audio("tiny-htsat", weights=path)


def test_clap_wrong_architecture(tmp_path):
    path = tmp_path / "paper.pt"
    paper = build_clap_audio("HTSAT-tiny")
    torch.save(clap_checkpoint(paper, True), path)
    with pytest.raises(WeightsError, match="shape mismatches"):
        build_clap_audio("tiny-htsat", weights=path)


def test_unknown_configs_are_named():
    with pytest.raises(ValueError, match="unknown open_clip vision model 'ViT-Q-99'"):
        build_clip_vision("ViT-Q-99")
    with pytest.raises(ValueError, match="never downloads"):
        build_clip_vision("hf-hub:laion/CLIP-ViT-B-32")
    with pytest.raises(FileNotFoundError, match="audio tower config not found"):
        build_clap_audio("HTSAT-huge")


def test_import_makes_no_network_call():
    """Importing phplib and building both tiny towers must not open a socket."""
    script = textwrap.dedent(
        """
        import socket

        def reject_connection(*args, **kwargs):
            raise RuntimeError(f"network call attempted: {args!r}")

        socket.socket.connect = reject_connection
        socket.socket.connect_ex = reject_connection
        socket.create_connection = reject_connection
        socket.getaddrinfo = reject_connection

        import phplib
        import phplib.model
        from phplib.backbones.clip_vision import build_clip_vision
        from phplib.backbones.clap_audio import build_clap_audio
        build_clip_vision("tiny-vit")
        build_clap_audio("tiny-htsat")
        print("ok")
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().endswith("ok")
