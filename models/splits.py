"""Walk-forward splits with a purge gap, so no training label overlaps a test row's horizon."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fold:
    number: int
    train: np.ndarray  # row positions
    test: np.ndarray


def walk_forward(n_rows: int, folds: int, purge: int, min_train: int) -> list[Fold]:
    """Expanding-window folds over rows in time order.

    Fold k trains on rows [0, cut_k - purge) and tests on [cut_k, cut_{k+1}). A training row's
    label looks `purge` rows ahead at most, so it never reaches into the test rows.
    """
    cuts = np.linspace(min_train + purge, n_rows, folds + 1).astype(int)
    out = []
    for k in range(folds):
        train = np.arange(0, cuts[k] - purge)
        test = np.arange(cuts[k], cuts[k + 1])
        if len(train) and len(test):
            out.append(Fold(k, train, test))
    return out
