"""One seaborn style for the whole book and a few figure helpers."""
from __future__ import annotations

import os
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from scipy import stats

from ._common.checks import check_int

__all__ = ["set_style", "PALETTE", "plot_history", "qq_plot", "norm_histogram", "explore",
           "widgets_enabled"]

PALETTE = "colorblind"


def set_style(context: str = "notebook") -> None:
    """The book's figure style: seaborn ``whitegrid``, the colour-blind palette, readable sizes.

    Parameters
    ----------
    context : str, optional
        seaborn plotting context scaling fonts and lines: ``"paper"``, ``"notebook"``
        (default), ``"talk"`` or ``"poster"``.
    """
    sns.set_theme(context=context, style="whitegrid", palette=PALETTE,
                  rc={"figure.figsize": (7.0, 4.0), "figure.dpi": 100, "savefig.dpi": 150,
                      "axes.titlesize": "medium", "legend.frameon": False})


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=float)


def plot_history(history, columns: Sequence[str] = ("loss", "test_loss"), ax=None,
                 logy: bool = False, label: Optional[str] = None):
    """Plot the given columns of a training history DataFrame against ``step``.

    Parameters
    ----------
    history : pandas.DataFrame
        Training history with a ``step`` column (e.g. :attr:`gnilab.train.TrainResult.history`).
    columns : sequence of str, optional
        Columns to draw, one line each (default ``("loss", "test_loss")``); columns that are
        missing or entirely NaN are skipped.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; the current axes by default.
    logy : bool, optional
        Use a logarithmic y axis (default ``False``).
    label : str, optional
        Prefix of the legend entries (``"label: column"``); the bare column names by default.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn into.
    """
    ax = ax or plt.gca()
    for col in columns:
        if col in history and history[col].notna().any():
            name = col if label is None else f"{label}: {col}"
            sns.lineplot(data=history, x="step", y=col, ax=ax, label=name)
    ax.set_ylabel(", ".join(columns))
    if logy:
        ax.set_yscale("log")
    return ax


def qq_plot(sample, ax=None, dist=stats.norm, max_points: int = 4000, label: Optional[str] = None,
            standardise: bool = True):
    """Quantile–quantile plot of ``sample`` against ``dist`` (standard normal by default).

    The sample is standardised (mean 0, standard deviation 1) when ``standardise`` so that a
    Gaussian sample falls on the diagonal; heavy tails bend away from it at both ends.

    Parameters
    ----------
    sample : array-like or torch.Tensor
        The sample, any shape (flattened).
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; the current axes by default.
    dist : scipy.stats distribution, optional
        Reference distribution with a ``ppf`` method (default :data:`scipy.stats.norm`).
    max_points : int, optional
        At most this many evenly spaced order statistics are plotted (default 4000); the
        extremes are kept.
    label : str, optional
        Legend label of the points.
    standardise : bool, optional
        Standardise the sample to mean 0 and standard deviation 1 first (default ``True``).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn into.
    """
    ax = ax or plt.gca()
    x = np.sort(_as_numpy(sample).ravel())
    if standardise:
        x = (x - x.mean()) / x.std()
    if x.size > max_points:  # evenly spaced order statistics keep the tails
        x = x[np.unique(np.linspace(0, x.size - 1, max_points).round().astype(int))]
    probs = (np.arange(1, x.size + 1) - 0.5) / x.size
    theory = dist.ppf(probs)
    ax.plot(theory, x, ".", ms=3, label=label)
    lim = [theory.min(), theory.max()]
    ax.plot(lim, lim, "k--", lw=1)
    name = "standard normal" if dist is stats.norm else getattr(dist, "name", "reference")
    ax.set_xlabel(f"{name} quantiles")
    ax.set_ylabel("sample quantiles")
    return ax


def norm_histogram(norms, reference_norms=None, ax=None, bins: int = 40,
                   labels: Sequence[str] = ("SGD noise", "Gaussian, same second moment")):
    """Histogram of noise norms ‖U_i‖, optionally against the norms of a reference sample.

    Parameters
    ----------
    norms : array-like or torch.Tensor
        The noise norms, shape ``(n,)``.
    reference_norms : array-like or torch.Tensor, optional
        Norms of a reference sample drawn on the same bins, e.g. of Gaussian noise with the
        same second moment.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; the current axes by default.
    bins : int, optional
        Number of shared histogram bins over both samples (default 40).
    labels : sequence of str, optional
        Legend labels of ``norms`` and ``reference_norms``, in that order.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn into (histograms are density-normalised).
    """
    ax = ax or plt.gca()
    a = _as_numpy(norms)
    edges = np.histogram_bin_edges(a if reference_norms is None
                                   else np.concatenate([a, _as_numpy(reference_norms)]), bins=bins)
    ax.hist(a, bins=edges, alpha=0.7, density=True, label=labels[0])
    if reference_norms is not None:
        ax.hist(_as_numpy(reference_norms), bins=edges, alpha=0.7, density=True, label=labels[1])
    ax.set_xlabel(r"$\|U\|_2$")
    ax.set_ylabel("density")
    ax.legend()
    return ax


def widgets_enabled() -> bool:
    """Whether :func:`explore` adds live sliders: ``ipywidgets`` is installed and the
    environment variable ``GNILAB_WIDGETS`` is not ``0``. The book build (``.ci/book``) and the
    test suite set ``GNILAB_WIDGETS=0``: a built page has no kernel to move a slider, and
    myst-nb would load the widget manager from a CDN.

    Returns
    -------
    bool
        ``True`` when live sliders will be shown.
    """
    if os.environ.get("GNILAB_WIDGETS", "1") == "0":
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def explore(draw, settings: Sequence[dict], sliders: Optional[dict] = None, ncols: int = 3,
            panel_size=(4.0, 3.2), title=None):
    """A static grid of ``draw`` at a few settings, plus live sliders in JupyterLab.

    Parameters
    ----------
    draw : callable
        ``draw(ax, **params)`` draws one panel into the matplotlib axes ``ax``.
    settings : sequence of dict
        The parameter sets of the static figure (always drawn: it is what the built book and a
        printed page show), e.g. ``[{"alpha": 0.8, "beta": 0}, {"alpha": 1.5, "beta": 0.5}]``.
    sliders : dict, optional
        ``name -> (low, high, step)`` (a tuple: a slider) or ``name -> [choices]`` (a list: a
        menu, to which the value of ``settings[0]`` is added if it is not among them): where
        :func:`widgets_enabled`, an ``ipywidgets.interact`` panel starting at ``settings[0]``
        redraws one panel as the sliders move.
    ncols, panel_size, title
        Layout of the static grid.

    Returns
    -------
    matplotlib.figure.Figure
        The static figure (already shown).
    """
    if not callable(draw):
        raise TypeError(f"draw must be callable as draw(ax, **params), got {type(draw).__name__}")
    if not settings:
        raise ValueError("settings must hold at least one parameter dict")
    settings = [dict(s) for s in settings]
    ncols = min(check_int("ncols", ncols, low=1), len(settings))
    nrows = -(-len(settings) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
                             squeeze=False)
    for ax, params in zip(axes.flat, settings):
        draw(ax, **params)
    for ax in list(axes.flat)[len(settings):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.show()
    if sliders and widgets_enabled():
        import ipywidgets

        controls = {}
        for name, spec in sliders.items():
            start = settings[0].get(name)
            if isinstance(spec, tuple) and len(spec) == 3 and all(
                    isinstance(v, (int, float)) for v in spec):
                low, high, step = spec
                kind = ipywidgets.IntSlider if all(isinstance(v, int) for v in spec) \
                    else ipywidgets.FloatSlider
                controls[name] = kind(value=start if start is not None else low, min=low,
                                      max=high, step=step, description=name,
                                      continuous_update=False)
            else:
                options = list(spec)
                if not options:
                    raise ValueError(f"sliders[{name!r}] must hold at least one choice")
                if start is None:
                    start = options[0]
                elif start not in options:      # the first setting is always selectable
                    numeric = all(isinstance(v, (int, float)) for v in options + [start])
                    options = sorted(options + [start]) if numeric else [start] + options
                controls[name] = ipywidgets.Dropdown(options=options, value=start,
                                                     description=name)
        fixed = {k: ipywidgets.fixed(v) for k, v in settings[0].items() if k not in controls}

        def live(**params):
            f, ax = plt.subplots(figsize=(panel_size[0] * 1.5, panel_size[1] * 1.5))
            draw(ax, **params)
            f.tight_layout()
            plt.show()

        ipywidgets.interact(live, **controls, **fixed)
    return fig
