"""Offline evaluation: the Fraud Detection Handbook's prequential protocol and metrics.

Protocol (Le Borgne et al., *Reproducible Machine Learning for Credit Card Fraud
Detection*, shared functions ``get_train_test_set``, ``prequentialSplit`` and the
Chapter 5 model-selection wrapper):

- ``start_date_training = 2018-07-25``; the test estimate uses
  ``start_date_training_for_test = start + (n_folds - 1) * 7 days`` and fold ``f``
  trains on the 7 days starting ``f * 7`` days before that. So the four folds train
  from 2018-07-25, 08-01, 08-08 and 08-15; each has a 7-day label delay and tests on
  the 7 days after it (08-08 ... 09-04).
- Test day ``d`` drops every customer already known compromised: frauds in the
  training week, plus frauds of the delay days up to ``d``'s own delay horizon.
- Card Precision@k (``card_precision_top_k``): per test day, customers ranked by their
  maximum score of the day, the share of truly compromised among the top ``k``;
  customers detected on an earlier test day are removed from the later days; the mean
  over days.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

__all__ = [
    "HANDBOOK_DAY0",
    "HANDBOOK_START_TRAINING",
    "Fold",
    "card_precision_at_k",
    "fold_metrics",
    "mean_metrics",
    "prequential_folds",
]

#: TX_TIME_DAYS == 0 in the handbook data.
HANDBOOK_DAY0 = date(2018, 4, 1)
HANDBOOK_START_TRAINING = date(2018, 7, 25)


@dataclass(frozen=True)
class Fold:
    train: np.ndarray
    test: np.ndarray
    train_start: date
    test_start: date


def prequential_folds(
    days: np.ndarray,
    customers: np.ndarray,
    labels: np.ndarray,
    *,
    start_training: date = HANDBOOK_START_TRAINING,
    day0: date = HANDBOOK_DAY0,
    n_folds: int = 4,
    delta_train: int = 7,
    delta_delay: int = 7,
    delta_test: int = 7,
) -> list[Fold]:
    """Row indices of the handbook's prequential test folds, oldest first.

    ``days`` is the integer day index of each row (days since ``day0``).
    """
    days = np.asarray(days)
    customers = np.asarray(customers)
    labels = np.asarray(labels).astype(bool)
    first_test_training = start_training + timedelta(days=(n_folds - 1) * delta_test)
    folds = []
    for f in reversed(range(n_folds)):
        start = first_test_training - timedelta(days=f * delta_test)
        s = (start - day0).days
        train = np.flatnonzero((days >= s) & (days < s + delta_train))
        known = set(customers[train][labels[train]].tolist())
        test_parts = []
        for d in range(delta_test):
            delay_day = s + delta_train + d - 1
            on_delay = (days == delay_day) & labels
            known |= set(customers[on_delay].tolist())
            idx = np.flatnonzero(days == s + delta_train + delta_delay + d)
            if known:
                keep = ~np.isin(customers[idx], np.fromiter(known, dtype=customers.dtype))
                idx = idx[keep]
            test_parts.append(idx)
        folds.append(Fold(train=train, test=np.concatenate(test_parts), train_start=start,
                          test_start=start + timedelta(days=delta_train + delta_delay)))
    return folds


def card_precision_at_k(
    days: np.ndarray,
    customers: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    k: int = 100,
    remove_detected: bool = True,
) -> tuple[float, list[float]]:
    """Mean and per-day Card Precision@k, as the handbook's ``card_precision_top_k``.

    Ties among customers' daily maxima are broken by customer id (the handbook's
    pandas sort leaves their order unspecified).
    """
    days = np.asarray(days)
    customers = np.asarray(customers)
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    detected: set = set()
    per_day: list[float] = []
    for day in np.unique(days):
        m = days == day
        c, y, s = customers[m], labels[m], scores[m]
        if detected:
            keep = ~np.isin(c, np.fromiter(detected, dtype=c.dtype))
            c, y, s = c[keep], y[keep], s[keep]
        uniq, inv = np.unique(c, return_inverse=True)
        max_score = np.full(len(uniq), -np.inf)
        np.maximum.at(max_score, inv, s)
        is_fraud = np.zeros(len(uniq), dtype=bool)
        np.logical_or.at(is_fraud, inv, y)
        order = np.argsort(-max_score, kind="stable")[:k]
        hits = uniq[order][is_fraud[order]]
        per_day.append(len(hits) / k)
        if remove_detected:
            detected |= set(hits.tolist())
    return (float(np.mean(per_day)) if per_day else float("nan")), per_day


def fold_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    days: np.ndarray,
    customers: np.ndarray,
    k: int = 100,
) -> dict[str, float]:
    """AUC ROC, average precision and Card Precision@k of one test fold."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    cp, _ = card_precision_at_k(days, customers, labels, scores, k=k)
    return {
        "auc_roc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
        f"card_precision@{k}": cp,
    }


def mean_metrics(per_fold: Sequence[dict[str, float]]) -> dict[str, float]:
    keys = per_fold[0].keys() if per_fold else []
    return {key: float(np.mean([m[key] for m in per_fold])) for key in keys}
