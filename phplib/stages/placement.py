"""Depth groups and ordering: which stage module acts at which paired block.

An ordering is one letter per depth group, read shallow to deep. "SMD" puts the task-shared
adapter (S) in the first group, the dynamic prompt generators (M) in the second and the task
prompts (D) in the third. "DMS" swaps the shallow and deep roles, and "-" leaves a group empty.
"""

from __future__ import annotations

from dataclasses import dataclass

STAGE_NAMES = {"S": "TMA (task-shared adapter)", "M": "TMDG (dynamic prompts)", "D": "TMI (task prompts)"}


@dataclass(frozen=True)
class Placement:
    """Blocks of each stage, derived from an ordering and depth groups."""

    order: str
    groups: tuple[tuple[int, ...], ...]
    num_blocks: int

    @classmethod
    def from_order(cls, order: str, groups: list[list[int]], num_blocks: int) -> "Placement":
        """Validate and build; raise ``ValueError`` naming the bad letter or block."""
        if len(order) != len(groups):
            raise ValueError(f"order {order!r} needs one letter per group, got {len(groups)} groups")
        letters = [letter for letter in order if letter != "-"]
        if any(letter not in STAGE_NAMES for letter in letters) or len(set(letters)) != len(letters):
            raise ValueError(f"order {order!r} must use each of S, M, D at most once and '-' for an empty group")
        seen: set[int] = set()
        for group in groups:
            for block in group:
                if not 0 <= block < num_blocks:
                    raise ValueError(
                        f"stages.groups {groups}: block {block} is outside 0..{num_blocks - 1}; "
                        f"the towers have {num_blocks} paired blocks"
                    )
                if block in seen:
                    raise ValueError(
                        f"stages.groups {groups}: block {block} is in two depth groups; give each block to one group"
                    )
                seen.add(block)
        return cls(order=order, groups=tuple(tuple(group) for group in groups), num_blocks=num_blocks)

    def blocks(self, stage: str) -> tuple[int, ...]:
        """Blocks where ``stage`` ("S", "M" or "D") acts; empty when the ordering drops it."""
        if stage not in self.order:
            return ()
        return self.groups[self.order.index(stage)]

    def stage_at(self, block: int) -> str | None:
        """Stage letter acting at ``block``, or None."""
        for letter, group in zip(self.order, self.groups):
            if block in group and letter != "-":
                return letter
        return None

    def describe(self) -> list[tuple[int, str]]:
        """List ``(block, stage name or '-')`` for every block, for printing."""
        return [(block, STAGE_NAMES.get(self.stage_at(block) or "", "-")) for block in range(self.num_blocks)]
