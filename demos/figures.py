"""The notebook's figures in current matplotlib: each function writes one PNG, returns its path."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from models.training import Run  # noqa: E402

DIGIT_COLORS = plt.colormaps["tab10"]


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def digits_grid(x: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    """The first 25 digits as 8×8 images, each titled with its label."""
    fig, axes = plt.subplots(5, 5, figsize=(6, 6.4))
    for ax, image, label in zip(axes.flat, x, labels):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=16)
        ax.set_title(f"label {label}", fontsize=9)
        ax.set_axis_off()
    fig.suptitle("sklearn digits: 8×8 pixels, values 0–16")
    return _save(fig, path)


def batch_images(x: np.ndarray, y: np.ndarray, batch: int, batches: int, path: Path) -> Path:
    """One batch as the network sees it: inputs (rows × 64 pixels) and one-hot targets."""
    fig, (ax_x, ax_y) = plt.subplots(1, 2, figsize=(8, 6), width_ratios=[64, 22])
    im = ax_x.imshow(x, aspect="auto", cmap="gray_r", interpolation="nearest")
    ax_x.set(title=f"inputs x ({x.shape[0]} × {x.shape[1]})", xlabel="pixel", ylabel="row")
    fig.colorbar(im, ax=ax_x, label="pixel value")
    ax_y.imshow(y, aspect="auto", cmap="Blues", interpolation="nearest")
    ax_y.set(title=f"one-hot y ({y.shape[0]} × {y.shape[1]})", xlabel="class")
    ax_y.set_xticks(range(10))
    ax_y.set_yticks([])
    fig.suptitle(f"Training batch {batch} (of {batches}): {x.shape[0]} rows drawn at random")
    return _save(fig, path)


def loss_curves_by_batch(run: Run, path: Path) -> Path:
    """Each batch's loss over its SGD steps, coloured by the batch's index."""
    batches, steps = run.losses.shape
    cmap = plt.colormaps["viridis"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for b, curve in enumerate(run.losses):
        ax.plot(np.arange(steps), curve, color=cmap(b / max(batches - 1, 1)), lw=0.7, alpha=0.8)
    ax.set(title=f"Loss during each batch's {steps} steps ({run.name} gradients)",
           xlabel="step within the batch", ylabel="squared-error loss of the batch")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, batches - 1))
    fig.colorbar(sm, ax=ax, label="batch index")
    return _save(fig, path)


def compare_loss_curves(engine: Run, numpy_run: Run, notebook: Run, path: Path) -> Path:
    """The engine's and the hand-derived NumPy loss curves overlaid; the notebook's beside them."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    steps = np.arange(engine.losses.size)
    left.plot(steps, engine.losses.ravel(), lw=2.5, color="tab:blue", label="engine")
    left.plot(steps, numpy_run.losses.ravel(), lw=0.8, ls="--", color="tab:orange",
              label="hand-derived NumPy (correct)")
    gap = np.abs(engine.losses - numpy_run.losses).max()
    left.set(title=f"True gradient: engine and NumPy coincide (max gap {gap:.1e})",
             xlabel="SGD step (all batches in order)", ylabel="squared-error loss of the batch")
    left.legend()
    right.plot(steps, notebook.losses.ravel(), lw=0.8, color="tab:red",
               label="notebook's backprop (softmax Jacobian dropped)")
    right.set(title="The notebook's gradient", xlabel="SGD step (all batches in order)")
    right.legend()
    return _save(fig, path)


def weights_before_after(w_init: tuple[np.ndarray, np.ndarray], runs: list[Run],
                         path: Path) -> Path:
    """w1 and w2 at the start and after each run, on one colour scale per matrix."""
    columns = [("initial", *w_init)] + [(run.name, run.w1, run.w2) for run in runs]
    fig, axes = plt.subplots(2, len(columns), figsize=(3.2 * len(columns), 7),
                             height_ratios=[64, 50])
    for row, label in enumerate(["w1 (64 × 50)", "w2 (50 × 10)"]):
        limit = max(np.abs(c[1 + row]).max() for c in columns)
        for ax, (name, *ws) in zip(axes[row], columns):
            im = ax.imshow(ws[row], cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto",
                           interpolation="nearest")
            ax.set_title(f"{label}\n{name}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=list(axes[row]), label="weight", fraction=0.02)
    fig.suptitle("Weights before and after training")
    return _save(fig, path)


def digits_on_pixel_pca(x: np.ndarray, labels: np.ndarray, w1s: dict[str, np.ndarray],
                        path: Path) -> Path:
    """Digits 3 and 4 on the 8×8 pixel grid, and on the plane of the PCA of w1's rows.

    Each pixel is a row of w1 (its 50 outgoing weights); PCA places the 64 pixels in 2-D, and
    a digit is drawn there as its pixels' intensities: pixels that the first layer treats alike
    sit close together.
    """
    fig, axes = plt.subplots(2, 1 + len(w1s), figsize=(3.6 * (1 + len(w1s)), 7.6),
                             layout="constrained")
    for row, digit in enumerate((3, 4)):
        image = x[labels == digit].mean(axis=0)
        axes[row, 0].imshow(image.reshape(8, 8), cmap="gray_r")
        axes[row, 0].set_title(f"mean digit {digit}: 8×8 pixel grid", fontsize=9)
        axes[row, 0].set_axis_off()
        for ax, (name, w1) in zip(axes[row, 1:], w1s.items()):
            points = PCA(n_components=2).fit_transform(w1)
            ax.add_collection(LineCollection(_lattice_edges(points), colors="tab:blue",
                                             linewidths=0.6, alpha=0.5, zorder=1))
            sc = ax.scatter(points[:, 0], points[:, 1], c=image, cmap="gray_r", s=60,
                            edgecolors="tab:blue", linewidths=0.5, zorder=2)
            ax.set_title(f"digit {digit} on PCA of w1 rows\n({name})", fontsize=9)
            ax.set(xlabel="PC 1 of w1's rows", ylabel="PC 2")
            ax.tick_params(labelsize=7)
        fig.colorbar(sc, ax=list(axes[row]), label="mean pixel value", fraction=0.02)
    return _save(fig, path)


def _lattice_edges(points: np.ndarray) -> np.ndarray:
    """The 8×8 pixel grid's edges (each pixel to its right and lower neighbour), placed at the
    pixels' points: drawn as lines, they show how the projection deforms the grid."""
    edges = [(r * 8 + c, r * 8 + c + 1) for r in range(8) for c in range(7)]
    edges += [(r * 8 + c, (r + 1) * 8 + c) for r in range(7) for c in range(8)]
    return np.array([[points[a], points[b]] for a, b in edges])


def activations(x: np.ndarray, y: np.ndarray, w1: np.ndarray, w2: np.ndarray,
                path: Path) -> Path:
    """One batch through the trained network: h = x·w1, relu(h), softmax(relu(h)·w2) as
    images beside the targets, and one row's prediction against its target."""
    h = x @ w1
    a = np.maximum(h, 0)
    z = a @ w2
    s = np.exp(z - z.max(axis=1, keepdims=True))
    s /= s.sum(axis=1, keepdims=True)
    fig, axes = plt.subplots(1, 5, figsize=(17, 5.5), width_ratios=[50, 50, 12, 12, 22],
                             layout="constrained")
    limit = np.abs(h).max()
    for ax, image, title, style in [(axes[0], h, "h = x·w1", dict(cmap="RdBu_r", vmin=-limit,
                                                                    vmax=limit)),
                                    (axes[1], a, "relu(h)", dict(cmap="Greys", vmin=0)),
                                    (axes[2], s, "softmax", dict(cmap="Blues", vmin=0, vmax=1)),
                                    (axes[3], y, "target", dict(cmap="Blues", vmin=0, vmax=1))]:
        im = ax.imshow(image, aspect="auto", interpolation="nearest", **style)
        ax.set(title=f"{title}\n{image.shape[0]} × {image.shape[1]}", xlabel="unit")
        if ax is not axes[0]:
            ax.set_yticks([])
        if ax is not axes[2]:  # softmax and target share the last colour bar
            fig.colorbar(im, ax=ax, fraction=0.1, shrink=0.8)
    axes[0].set_ylabel("row of the batch")
    row = 0
    axes[4].bar(range(10), s[row], color="tab:blue", label="predicted (softmax)")
    axes[4].bar(range(10), y[row], fill=False, edgecolor="tab:red", lw=2, label="target")
    axes[4].set(title=f"row {row}: predicts {s[row].argmax()}, target {y[row].argmax()}",
                xlabel="class", ylim=(0, 1.3), xticks=range(10))
    axes[4].legend(fontsize=8, loc="upper center", ncols=2)
    fig.suptitle("One batch through the trained network (engine's weights)")
    return _save(fig, path)


def first_update(before: tuple[np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray],
                 lr: float, path: Path) -> Path:
    """The weights before and after a single SGD update, and the update itself (too small to
    see at lr·gradient, so drawn on its own scale)."""
    fig, axes = plt.subplots(2, 3, figsize=(11, 7.5), height_ratios=[64, 50])
    for row, name in enumerate(["w1", "w2"]):
        change = after[row] - before[row]
        limit = np.abs(before[row]).max()
        for ax, image, title, scale in [
                (axes[row, 0], before[row], f"{name} initial", limit),
                (axes[row, 1], after[row], f"{name} after one update", limit),
                (axes[row, 2], change, f"{name}: the update (−lr·grad, lr {lr:g})",
                 np.abs(change).max() or 1.0)]:
            im = ax.imshow(image, cmap="RdBu_r", vmin=-scale, vmax=scale, aspect="auto",
                           interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, fraction=0.05)
    fig.suptitle("A single update: the weights barely move (largest change "
                 f"{max(np.abs(a - b).max() for a, b in zip(after, before)):.1e})")
    return _save(fig, path)


def embeddings(panels: dict[str, np.ndarray], labels: dict[str, np.ndarray], path: Path) -> Path:
    """Six 2-D embeddings of the digits side by side, points coloured by digit."""
    fig, axes = plt.subplots(2, 3, figsize=(14, 9))
    for ax, (title, points) in zip(axes.flat, panels.items()):
        few = len(np.unique(points.round(9), axis=0)) <= 10  # one point per class
        if few:  # the label encoding: each class drawn as its digit, as the original did
            for (px, py), digit in zip(points, labels[title]):
                ax.text(px, py, str(digit), color=DIGIT_COLORS(digit), fontsize=22,
                        ha="center", va="center", fontweight="bold")
            pad = np.ptp(points, axis=0).max() * 0.15 + 1e-9
            ax.set(xlim=(points[:, 0].min() - pad, points[:, 0].max() + pad),
                   ylim=(points[:, 1].min() - pad, points[:, 1].max() + pad))
        else:
            ax.scatter(points[:, 0], points[:, 1], c=labels[title], cmap=DIGIT_COLORS,
                       vmin=-0.5, vmax=9.5, s=8, alpha=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    sm = plt.cm.ScalarMappable(cmap=DIGIT_COLORS, norm=plt.Normalize(-0.5, 9.5))
    fig.colorbar(sm, ax=list(axes.flat), ticks=range(10), label="digit", fraction=0.02)
    fig.suptitle("2-D embeddings of the digits")
    return _save(fig, path)
