"""Running BEATs on batches of windows: precision, layers, and what each row contributes.

:class:`ModelRunner` takes a padded batch of windows (rows of :mod:`beats_extract.loading`),
runs the model in inference mode in the chosen precision, takes the chosen hidden states, and
reduces every row to what it contributes to its clip: the pooled vector over the time steps the
row keeps and their token count (pooled output), or the kept time steps themselves (frame-level
output). The padding of a batch is masked on the token grid
(:func:`~beats_extract.framing.aligned_padding_mask`), so every row gives exactly what it
gives alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Literal

import numpy as np
import torch

from beats_core.errors import ConfigError
from beats_core.geometry import num_time_steps, step_samples
from beats_core.model import BEATs
from beats_extract.framing import aligned_padding_mask
from beats_extract.loading import Row
from beats_extract.poolings import Pooling

__all__ = ["LayerSelection", "ModelRunner", "RowOutput", "resolve_layers"]

#: ``layer=``: one hidden state (index), several (concatenated), or ``"all"`` (stacked).
LayerSelection = int | Sequence[int] | Literal["all"]
#: What a row contributes: ``(value, weight)``. Pooled: the pooled vector and its number of kept
#: tokens. Frame-level: the kept steps ``(T, ...)`` and the index of the first on the clip's grid.
#: A weight of -1: the row contributes nothing.
RowOutput = tuple[np.ndarray, int]


class ModelRunner:
    """Runs a BEATs model on padded windows and reduces each row.

    Args:
        model: the model (used as is, on its device).
        pooling: how a row's kept tokens become one vector, or ``None`` for frame-level output.
        layers: indices into the L + 1 hidden states (see :func:`resolve_layers`).
        stacked: stack the layers on an axis of their own instead of concatenating them.
        dtype: the precision to run in: float32 plainly, bfloat16/float16 under autocast.
    """

    def __init__(
        self, model: BEATs, *, pooling: Pooling | None, layers: list[int], stacked: bool, dtype: torch.dtype
    ) -> None:
        self.model = model
        self.pooling = pooling
        self.layers = layers
        self.stacked = stacked
        self.dtype = dtype

    @property
    def device(self) -> torch.device:
        """Where the model is, hence where it runs."""
        return self.model.patch_embedding.weight.device

    @property
    def patch_size(self) -> int:
        """``BEATsConfig.input_patch_size`` of the model."""
        return self.model.cfg.input_patch_size

    def run(self, waveforms: torch.Tensor, rows: list[Row]) -> list[RowOutput]:
        """Run the model on ``(R, N)`` windows and reduce each row (see :data:`RowOutput`).

        Args:
            waveforms: float32 ``(R, N)`` zero-padded windows at 16 kHz.
            rows: what each row is (its length and the steps it keeps).

        Returns:
            One output per row, in order.
        """
        lengths = [row.window.length for row in rows]
        sample_mask, _ = aligned_padding_mask(lengths, waveforms.shape[1], self.patch_size)
        model, per_step = self.model, self.model.num_frequency_patches
        training = model.training
        autocast = (
            torch.autocast(self.device.type, dtype=self.dtype)
            if self.dtype != torch.float32
            else nullcontext()
        )
        try:
            model.eval()
            with torch.inference_mode(), autocast, model.in_place_inference():
                source = waveforms.to(self.device, non_blocking=True)
                mask = None if sample_mask is None else sample_mask.to(self.device)
                if self.stacked or self.layers != [len(model.encoder.layers)]:
                    hidden, _ = model.extract_hidden_states(source, mask)
                    layers = [hidden[i] for i in self.layers]
                else:
                    features, _ = model.forward_features(source, mask)
                    layers = [features]
                steps = layers[0].shape[1] // per_step
                kept = [
                    row.window.kept_steps(min(num_time_steps(n, self.patch_size), steps))
                    for row, n in zip(rows, lengths, strict=True)
                ]
                if self.pooling is not None:
                    pooled = self._pool(self.pooling, layers, kept, per_step)
                    return [
                        (pooled[r], (stop - first) * per_step if stop > first else -1)
                        for r, (first, stop) in enumerate(kept)
                    ]
                frames = [layer.float().unflatten(1, (steps, per_step)).mean(dim=2) for layer in layers]
                joined = (
                    (torch.stack(frames, dim=2) if self.stacked else torch.cat(frames, dim=-1)).cpu().numpy()
                )
        finally:
            model.train(training)
        step = step_samples(self.patch_size)
        return [
            (
                joined[r, first:stop],
                (row.window.start - row.clip.start) // step + first if stop > first else -1,
            )
            for r, (row, (first, stop)) in enumerate(zip(rows, kept, strict=True))
        ]

    def _pool(
        self, pooling: Pooling, layers: list[torch.Tensor], kept: list[tuple[int, int]], per_step: int
    ) -> np.ndarray:
        """Pool each layer over each row's kept tokens; ``(R, *feature_shape)``."""
        num_tokens = layers[0].shape[1]
        device = layers[0].device
        step_of_token = torch.arange(num_tokens, device=device) // per_step
        first = torch.tensor([f for f, _ in kept], device=device).unsqueeze(1)
        stop = torch.tensor([s if s > f else f + 1 for f, s in kept], device=device).unsqueeze(1)
        pool_mask = (step_of_token < first) | (step_of_token >= stop)
        mask = pool_mask if bool(pool_mask.any()) else None
        pooled = [pooling(layer.float(), mask) for layer in layers]
        joined = torch.stack(pooled, dim=1) if self.stacked else torch.cat(pooled, dim=-1)
        return joined.float().cpu().numpy()


def resolve_layers(layer: LayerSelection, num_layers: int) -> tuple[list[int], bool]:
    """``layer`` -> (indices into the L + 1 hidden states, whether they are stacked).

    Args:
        layer: an index (0: the input of the first layer, i: the output of layer i, -1: the
            last), a list of them (concatenated), or ``"all"`` (stacked).
        num_layers: the model's number of transformer layers L.

    Returns:
        The indices and whether they are stacked.

    Raises:
        ConfigError: an index out of range or a value of the wrong type.
    """
    count = num_layers + 1
    described = (
        f"this model has {num_layers} layers, so hidden states 0 ... {num_layers} (0: the input of the first "
        f"layer, i: the output of layer i, -1: the last)"
    )

    def index(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"layer must be an int, a list of ints or 'all', got {value!r}; {described}")
        if not -count <= value < count:
            raise ConfigError(f"layer {value} is out of range: {described}")
        return int(value) % count

    if isinstance(layer, str):
        if layer != "all":
            raise ConfigError(f"layer must be an int, a list of ints or 'all', got {layer!r}")
        return list(range(count)), True
    if isinstance(layer, Sequence):
        if not layer:
            raise ConfigError(f"layer is an empty list; {described}")
        return [index(value) for value in layer], False
    return [index(layer)], False
