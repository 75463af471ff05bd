"""What one atlas entry is: a :class:`Unit` record (the layer, what kind of unit, its channel or direction, its name)
that renders itself as an objective and scores feature maps, instead of numbers whose meaning depends on the range."""

from __future__ import annotations

import dataclasses

import torch

from ..optvis.objectives import channel, direction, neuron

KINDS = ("channel", "neuron", "direction")


@dataclasses.dataclass(frozen=True, eq=False)
class Unit:
    """One entry of an atlas.

    Attributes:
        layer: the layer it reads.
        number: its key in the index and in its files' names: the channel's index for a channel or a neuron; the
            named directions of a layer are numbered after its channels, in the order given.
        kind: `"channel"` (the channel's mean over space), `"neuron"` (the channel at the centre) or `"direction"`.
        vector: the direction `(C,)` in the layer's channel space (directions only).
        name: the direction's name (directions only).
    """

    layer: str
    number: int
    kind: str
    vector: torch.Tensor | None = None
    name: str | None = None

    def objective(self, batch: int | None = None):
        """Its objective (for batch element `batch`)."""
        if self.kind == "direction":
            return direction(self.layer, self.vector, batch=batch)
        make = channel if self.kind == "channel" else neuron
        return make(self.layer, self.number, batch=batch)

    def weights(self, channels: int) -> torch.Tensor:
        """`(C,)`: the features' projection that scores it (one-hot for a channel or neuron, the direction)."""
        if self.kind == "direction":
            return self.vector.float()
        w = torch.zeros(channels)
        w[self.number] = 1.0
        return w


def group_objective(units: list[Unit]):
    """One objective per batch element for a batch of units of one layer (one batched channel or neuron objective
    when they are all of that kind)."""
    kinds = {u.kind for u in units}
    if kinds == {"channel"}:
        return channel(units[0].layer, [u.number for u in units])
    if kinds == {"neuron"}:
        return neuron(units[0].layer, [u.number for u in units])
    return sum(u.objective(batch=i) for i, u in enumerate(units))


__all__ = ["Unit", "group_objective", "KINDS"]
