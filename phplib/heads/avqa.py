"""AVQA head: answer classification from a question encoding and the clip's audio-visual features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from phplib.heads.base import TaskHead, fuse_features
from phplib.metrics.tasks import avqa_accuracy


class AVQAHead(TaskHead):
    """Question-guided attention over segments, then a classifier over the answer vocabulary.

    The question is encoded by a word embedding and a GRU, and its encoding attends over the fused
    segment features (temporal grounding: which seconds of the clip answer the question). The
    attended clip vector, gated by the question, predicts the answer. A small recurrent encoder
    rather than the CLIP text tower: MUSIC-AVQA questions come from a few dozen templates over a
    vocabulary of under a hundred words, the toy scale has no pretrained text tower, and the
    encoder then trains with the task instead of adding a frozen 63 M-parameter tower and its tokenizer.
    """

    metric_name = "accuracy"

    def __init__(self, video_dim: int, audio_dim: int, vocab_size: int, num_answers: int, hidden: int = 128):
        super().__init__()
        self.num_answers = num_answers
        self.embedding = nn.Embedding(vocab_size, hidden, padding_idx=0)
        self.question_encoder = nn.GRU(hidden, hidden, batch_first=True)
        self.clip_projection = nn.Sequential(nn.LayerNorm(video_dim + audio_dim), nn.Linear(video_dim + audio_dim, hidden))
        self.classifier = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, num_answers))

    def encode_question(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Encode padded token ids ``[B, Lq]`` into ``[B, hidden]`` (the GRU state at each true length)."""
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embedding(tokens), lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        _, state = self.question_encoder(packed)
        return state[-1]

    def forward(self, video: torch.Tensor, audio: torch.Tensor, batch: dict) -> torch.Tensor:
        question = self.encode_question(batch["question"], torch.as_tensor(batch["question_len"]))  # [B, H]
        segments = self.clip_projection(fuse_features(video, audio))  # [B, T, H]
        weights = torch.einsum("bth,bh->bt", segments, question).div(segments.shape[-1] ** 0.5).softmax(dim=1)
        clip = torch.einsum("bt,bth->bh", weights, segments)
        return self.classifier(clip * torch.tanh(question))  # [B, answers]

    def loss(self, outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        return F.cross_entropy(outputs, batch["answer"], ignore_index=-1)  # -1 marks an answer missing from the training vocabulary

    def collect(self, outputs: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        collected = {"pred": outputs.argmax(-1).cpu(), "target": batch["answer"].cpu()}
        if "question_type" in batch:
            collected["question_type"] = list(batch["question_type"])
        return collected

    def score(self, collected: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        result = avqa_accuracy(collected["pred"], collected["target"], collected.get("question_type"))
        details = {"accuracy": float(result["overall"])}
        details.update({f"accuracy {kind}": float(value) for kind, value in result.get("per_type", {}).items()})
        return details["accuracy"], details
