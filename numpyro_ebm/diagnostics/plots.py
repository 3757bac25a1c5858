"""Matplotlib figures for training runs: particle grids and learning curves.

Every function returns the figure and, given ``path``, also saves it as PNG.
"""

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from numpyro_ebm.learning.state import TrainingHistory
from numpyro_ebm.types import ArrayLike


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def _image_grid(
    ax, images: np.ndarray, image_shape: tuple[int, int], ncols: int
) -> None:
    count = images.shape[0]
    nrows = int(np.ceil(count / ncols))
    height, width = image_shape
    canvas = np.full((nrows * (height + 1) + 1, ncols * (width + 1) + 1), np.nan)
    for index in range(count):
        row, col = divmod(index, ncols)
        top, left = row * (height + 1) + 1, col * (width + 1) + 1
        canvas[top : top + height, left : left + width] = images[index].reshape(
            image_shape
        )
    cmap = plt.get_cmap("gray_r").with_extremes(bad="white")
    ax.imshow(canvas, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_particles(
    panels: dict[str, ArrayLike],
    image_shape: tuple[int, int],
    *,
    ncols: int = 10,
    max_images: int = 100,
    path: str | Path | None = None,
) -> Figure:
    """Show batches of configurations as image grids, one panel per entry.

    Parameters
    ----------
    panels
        Title to an array of shape ``(count, height * width)`` (or
        ``(count, height, width)``) with values in [0, 1], for example
        ``{"fantasy particles": chains, "training digits": data}``.
    image_shape
        ``(height, width)`` of one image.
    ncols
        Images per row.
    max_images
        Images shown per panel.
    path
        Where to save the PNG, if given.

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_particles({"noise": np.random.rand(20, 64)}, (8, 8))
    >>> len(fig.axes)
    1
    """
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 4.4), squeeze=False
    )
    for ax, (title, images) in zip(axes[0], panels.items(), strict=True):
        images = np.asarray(images, dtype=float)[:max_images]
        images = images.reshape(images.shape[0], -1)
        _image_grid(ax, images, image_shape, ncols)
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_learning_curves(
    history: TrainingHistory,
    *,
    updates_per_epoch: int | None = None,
    reference_lines: dict[str, float] | None = None,
    metric_groups: Sequence[Sequence[str]] | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Plot the energies per update and every recorded metric per epoch.

    Parameters
    ----------
    history
        ``result.history`` of a training run.
    updates_per_epoch
        If given, the energy panel's x axis is in epochs.
    reference_lines
        Horizontal lines on the metrics panel, label to value (for example the
        log-likelihood of an independent-pixels model).
    metric_groups
        Metric names that share a panel; by default all metrics share one.
    path
        Where to save the PNG, if given.
    """
    groups = list(metric_groups or ([list(history.metrics)] if history.metrics else []))
    fig, axes = plt.subplots(1, 1 + len(groups), figsize=(5.5 * (1 + len(groups)), 4))
    axes = np.atleast_1d(axes)

    steps = np.arange(1, history.energy_gap.size + 1, dtype=float)
    label = "update"
    if updates_per_epoch:
        steps, label = steps / updates_per_epoch, "epoch"
    window = max(1, steps.size // 100)
    for name in ("data_energy", "fantasy_energy"):
        values = getattr(history, name)
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        axes[0].plot(steps[window - 1 :], smooth, label=name.replace("_", " "))
    axes[0].set_xlabel(label)
    axes[0].set_ylabel("mean energy")
    axes[0].set_title(f"energies (moving average over {window} updates)")
    axes[0].legend()

    for ax, group in zip(axes[1:], groups, strict=True):
        for name in group:
            ax.plot(
                history.metric_epochs, history.metrics[name], marker=".", label=name
            )
        for name, value in (reference_lines or {}).items():
            ax.axhline(value, linestyle="--", color="gray", label=name)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    return _save(fig, path)
