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
    metric_label: str = "metric",
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
    metric_label
        Label of the metric panels' y axis, with its unit.
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
        ax.set_ylabel(metric_label)
        ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_filters(
    weights: ArrayLike,
    image_shape: tuple[int, int],
    *,
    ncols: int = 10,
    max_filters: int = 100,
    path: str | Path | None = None,
) -> Figure:
    """Show the weights of each hidden unit as an image, scaled per unit.

    Parameters
    ----------
    weights
        Weight matrix of shape ``(num_visible, num_hidden)``, as in
        ``rbm.constrain(params)["weights"]``.
    image_shape
        ``(height, width)`` with ``height * width == num_visible``.

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_filters(np.random.default_rng(0).normal(size=(64, 8)), (8, 8))
    >>> len(fig.axes)
    1
    """
    filters = np.asarray(weights, dtype=float).T[:max_filters]
    low = filters.min(axis=1, keepdims=True)
    span = np.maximum(filters.max(axis=1, keepdims=True) - low, 1e-12)
    return plot_particles(
        {"hidden-unit filters": (filters - low) / span},
        image_shape,
        ncols=ncols,
        max_images=max_filters,
        path=path,
    )


def plot_moments(
    data_moments,
    model_moments,
    *,
    path: str | Path | None = None,
) -> Figure:
    """Scatter model against data moments with the diagonal: means and connected correlations.

    At the maximum-likelihood optimum every point lies on the diagonal. The
    titles give the Pearson correlation and the slope of
    :func:`~numpyro_ebm.estimators.compare_moments`.

    Parameters
    ----------
    data_moments, model_moments
        :class:`~numpyro_ebm.estimators.Moments` of the data and of the fantasy
        particles.
    """
    from numpyro_ebm.estimators.moments import compare_moments

    comparison = compare_moments(data_moments, model_moments)
    element = np.asarray(data_moments.element)
    distinct = element[:, None] < element[None, :]
    panels = (
        (
            "one-point",
            np.asarray(data_moments.mean),
            np.asarray(model_moments.mean),
            comparison.mean_pearson,
            comparison.mean_slope,
        ),
        (
            "connected two-point",
            np.asarray(data_moments.covariance)[distinct],
            np.asarray(model_moments.covariance)[distinct],
            comparison.covariance_pearson,
            comparison.covariance_slope,
        ),
    )
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, (title, data_values, model_values, pearson, slope) in zip(
        axes, panels, strict=True
    ):
        ax.scatter(data_values, model_values, s=6, alpha=0.6)
        low = float(min(data_values.min(), model_values.min()))
        high = float(max(data_values.max(), model_values.max()))
        ax.plot([low, high], [low, high], color="gray", linestyle="--", linewidth=1)
        ax.set_xlabel("data")
        ax.set_ylabel("model (fantasy particles)")
        ax.set_title(f"{title}: Pearson {float(pearson):.3f}, slope {float(slope):.3f}")
    fig.tight_layout()
    return _save(fig, path)


def plot_trace(trace, *, var_names: Sequence[str] | None = None, path=None) -> Figure:
    """Plot the arviz-plots trace and distribution of traced chain variables.

    ``trace`` is a DataTree from :func:`~numpyro_ebm.diagnostics.fantasy_trace`.
    """
    import arviz_plots

    collection = arviz_plots.plot_trace_dist(
        trace, var_names=list(var_names) if var_names else None, backend="matplotlib"
    )
    fig = collection.viz["figure"].item()
    return _save(fig, path)


def plot_rank(trace, *, var_names: Sequence[str] | None = None, path=None) -> Figure:
    """Plot the arviz-plots rank plot of traced chain variables.

    Chains that sample the same distribution have uniform ranks.
    """
    import arviz_plots

    collection = arviz_plots.plot_rank(
        trace, var_names=list(var_names) if var_names else None, backend="matplotlib"
    )
    fig = collection.viz["figure"].item()
    return _save(fig, path)
