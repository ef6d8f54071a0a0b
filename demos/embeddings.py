"""The notebook's six 2-D embeddings of the digits.

They run on one thread (BLAS and OpenMP pinned with threadpoolctl): on 2 cores MDS took 6.7 s on
one thread and 13 s on two, and unpinned the demo's time swung between 40 and 98 s.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import MDS, TSNE, Isomap
from threadpoolctl import threadpool_limits

from models import one_hot


def six_embeddings(x: np.ndarray, labels: np.ndarray, w1: np.ndarray, w2: np.ndarray,
                   subsample: int | None, seed: int) -> tuple[dict, dict, dict]:
    """PCA of the raw pixels, of x·w1 and of the label encoding w2·onehot, then MDS, Isomap and
    t-SNE of the raw pixels (on `subsample` random rows when given: they are the slow ones).

    Returns (points by title, labels by title, seconds by title). Says what it does before
    each one, as the slow ones take seconds.
    """
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(x), subsample, replace=False)) if subsample else slice(None)
    x_sub, labels_sub = x[rows], labels[rows]
    suffix = f" ({len(x_sub)} of {len(x)} digits)" if subsample else ""
    jobs = {
        "PCA of the raw pixels": (lambda: PCA(2).fit_transform(x), labels),
        "PCA of x·w1 (first layer, trained)": (lambda: PCA(2).fit_transform(x @ w1), labels),
        "PCA of the label encoding w2·onehot": (
            lambda: PCA(2).fit_transform(one_hot(labels) @ w2.T), labels),
        "MDS of the raw pixels" + suffix: (lambda: MDS(
            n_components=2, n_init=1, init="classical_mds", random_state=seed
        ).fit_transform(x_sub), labels_sub),
        "Isomap of the raw pixels" + suffix: (
            lambda: Isomap(n_components=2, n_neighbors=10).fit_transform(x_sub), labels_sub),
        "t-SNE of the raw pixels" + suffix: (lambda: TSNE(
            n_components=2, init="pca", random_state=seed).fit_transform(x_sub), labels_sub),
    }
    points, point_labels, seconds = {}, {}, {}
    for title, (embed, title_labels) in jobs.items():
        print(f"embedding: {title} ...", flush=True)
        start = time.perf_counter()
        with threadpool_limits(limits=1):
            points[title] = embed()
        point_labels[title] = title_labels
        seconds[title] = time.perf_counter() - start
    return points, point_labels, seconds
