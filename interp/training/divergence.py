"""Divergence: a training run stops at the first step whose loss or weight norms are not
finite, before that step's checkpoint is kept."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class DivergenceCheck:
    """Raises ValueError when the loss or a weight norm of a step is NaN or infinite
    (accuracies may be NaN: an empty subset), before that step's checkpoint is kept.

    On the CPU each step is checked at once; on a GPU the first bad step is noted on the
    device (no sync) and looked at before each checkpoint. ``values`` may have a leading
    model axis (a stack); ``labels[i]`` then names model i in the message.
    """

    def __init__(self, metric_names: Sequence[str], device: torch.device,
                 labels: Sequence[str] = ()) -> None:
        watch = [i for i, k in enumerate(metric_names) if k == "loss" or k[:5] == "norm/"]
        self.index = torch.tensor(watch, device=device)
        self.names = [metric_names[i] for i in watch]
        self.labels, self.sync_every_step = list(labels), device.type == "cpu"
        self.first: tuple[torch.Tensor, torch.Tensor] | None = None
        self.last_checkpoint: int | None = None

    def check(self, step: int, values: torch.Tensor, checkpoint: bool) -> None:
        """Check the metrics of ``step``; a ``checkpoint`` step that passes becomes the
        last finite checkpoint an error names."""
        watched = values[..., self.index]
        if self.sync_every_step:
            if not bool(torch.isfinite(watched).all()):
                raise self.error(step, watched)
        else:
            ok = torch.isfinite(watched).all()
            if self.first is None:
                self.first = (torch.full((), -1, device=values.device), watched)
            keep = ok | (self.first[0] >= 0)
            self.first = (torch.where(keep, self.first[0], step),
                          torch.where(keep, self.first[1], watched))
            if checkpoint and int(self.first[0]) >= 0:
                raise self.error(int(self.first[0]), self.first[1])
        if checkpoint:
            self.last_checkpoint = step

    def error(self, step: int, watched: torch.Tensor) -> ValueError:
        watched = watched.detach().cpu().double()
        who = f"training {self.labels[0]}" if self.labels else "training"
        if watched.ndim == 2:
            model = int((~torch.isfinite(watched)).any(1).nonzero()[0, 0])
            watched, who = watched[model], f"training {self.labels[model]}"
        bad = int((~torch.isfinite(watched)).nonzero()[0, 0])
        name = self.names[bad]
        what = "the loss" if name == "loss" else f"the {name.replace('/', ' of ')}"
        kept = ("no checkpoint was kept" if self.last_checkpoint is None else "the run file "
                f"keeps the last finite checkpoint (step {self.last_checkpoint})")
        return ValueError(f"{who} diverged at step {step}: {what} is {watched[bad].item()}; "
                          f"{kept}; a smaller lr or weight decay may help.")
