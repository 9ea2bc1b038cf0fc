"""The handbook protocol: folds, known-compromised removal, Card Precision@k."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from models.evaluation import card_precision_at_k, fold_metrics, prequential_folds


def test_card_precision_counts_customers_not_transactions():
    days = np.array([0, 0, 0, 0, 0])
    customers = np.array([1, 1, 2, 3, 4])
    labels = np.array([1, 1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    mean, per_day = card_precision_at_k(days, customers, labels, scores, k=2)
    # top-2 customers by max score: 1 (fraud), 2 (legit)
    assert per_day == [0.5] and mean == 0.5


def test_detected_customers_are_removed_from_later_days():
    days = np.array([0, 0, 1, 1])
    customers = np.array([1, 2, 1, 2])
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.1, 0.9, 0.1])
    _, per_day = card_precision_at_k(days, customers, labels, scores, k=1)
    # day 1: customer 1 was detected on day 0 and is gone; customer 2 is top and legit
    assert per_day == [1.0, 0.0]
    _, kept = card_precision_at_k(days, customers, labels, scores, k=1, remove_detected=False)
    assert kept == [1.0, 1.0]


def test_prequential_folds_follow_the_handbook_calendar():
    day0 = date(2018, 4, 1)
    days = np.arange(100, 170).repeat(3)  # three rows per day
    customers = np.tile([1, 2, 3], 70)
    labels = np.zeros_like(days)
    # customer 1 defrauded in fold 0's training week, customer 2 during its delay
    s0 = (date(2018, 7, 25) - day0).days
    labels[(days == s0 + 2) & (customers == 1)] = 1
    labels[(days == s0 + 9) & (customers == 2)] = 1
    folds = prequential_folds(days, customers, labels)
    assert [f.train_start for f in folds] == [date(2018, 7, 25), date(2018, 8, 1),
                                             date(2018, 8, 8), date(2018, 8, 15)]
    assert [f.test_start for f in folds] == [date(2018, 8, 8), date(2018, 8, 15),
                                            date(2018, 8, 22), date(2018, 8, 29)]
    first = folds[0]
    assert sorted(set(days[first.train])) == list(range(s0, s0 + 7))
    assert sorted(set(days[first.test])) == list(range(s0 + 14, s0 + 21))
    test_customers = {(int(d), int(c)) for d, c in zip(days[first.test], customers[first.test], strict=True)}
    assert all(c != 1 for _, c in test_customers)  # known from training
    # customer 2's fraud (delay day 2) becomes known for test day 3 onwards
    assert (s0 + 14, 2) in test_customers and (s0 + 16, 2) in test_customers
    assert (s0 + 17, 2) not in test_customers


def test_fold_metrics_on_a_perfect_ranking():
    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.1).astype(int)
    m = fold_metrics(labels, labels + rng.random(500) * 0.1, days=np.zeros(500, int),
                     customers=np.arange(500), k=100)
    assert m["auc_roc"] == pytest.approx(1.0)
    assert m["average_precision"] == pytest.approx(1.0)
    assert m["card_precision@100"] == pytest.approx(labels.sum() / 100)
