"""The notebook's figures in current matplotlib: each function writes one PNG, returns its path."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
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


def batch_images(x: np.ndarray, y: np.ndarray, path: Path) -> Path:
    """One batch as the network sees it: inputs (rows × 64 pixels) and one-hot targets."""
    fig, (ax_x, ax_y) = plt.subplots(1, 2, figsize=(8, 6), width_ratios=[64, 22])
    im = ax_x.imshow(x, aspect="auto", cmap="gray_r", interpolation="nearest")
    ax_x.set(title=f"inputs x ({x.shape[0]} × {x.shape[1]})", xlabel="pixel", ylabel="row")
    fig.colorbar(im, ax=ax_x, label="pixel value")
    ax_y.imshow(y, aspect="auto", cmap="Blues", interpolation="nearest")
    ax_y.set(title=f"one-hot y ({y.shape[0]} × {y.shape[1]})", xlabel="class")
    ax_y.set_xticks(range(10))
    ax_y.set_yticks([])
    fig.suptitle("One training batch")
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
    fig, axes = plt.subplots(2, 1 + len(w1s), figsize=(3.3 * (1 + len(w1s)), 6.6))
    for row, digit in enumerate((3, 4)):
        image = x[labels == digit].mean(axis=0)
        axes[row, 0].imshow(image.reshape(8, 8), cmap="gray_r")
        axes[row, 0].set_title(f"mean digit {digit}: 8×8 pixel grid", fontsize=9)
        axes[row, 0].set_axis_off()
        for ax, (name, w1) in zip(axes[row, 1:], w1s.items()):
            points = PCA(n_components=2).fit_transform(w1)
            sc = ax.scatter(points[:, 0], points[:, 1], c=image, cmap="gray_r", s=60,
                            edgecolors="tab:blue", linewidths=0.5)
            ax.set_title(f"digit {digit} on PCA of w1 rows\n({name})", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(sc, ax=list(axes[row]), label="mean pixel value", fraction=0.02)
    return _save(fig, path)


def embeddings(panels: dict[str, np.ndarray], labels: dict[str, np.ndarray], path: Path) -> Path:
    """Six 2-D embeddings of the digits side by side, points coloured by digit."""
    fig, axes = plt.subplots(2, 3, figsize=(14, 9))
    for ax, (title, points) in zip(axes.flat, panels.items()):
        few = len(np.unique(points.round(9), axis=0)) <= 10  # one point per class: draw big
        ax.scatter(points[:, 0], points[:, 1], c=labels[title], cmap=DIGIT_COLORS, vmin=-0.5,
                   vmax=9.5, s=120 if few else 8, alpha=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    sm = plt.cm.ScalarMappable(cmap=DIGIT_COLORS, norm=plt.Normalize(-0.5, 9.5))
    fig.colorbar(sm, ax=list(axes.flat), ticks=range(10), label="digit", fraction=0.02)
    fig.suptitle("2-D embeddings of the digits")
    return _save(fig, path)
