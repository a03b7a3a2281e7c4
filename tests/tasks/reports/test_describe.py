"""Tests for tasks/reports/_describe.py: what each model is comes from the run's files."""

from __future__ import annotations

from tasks.reports import describe_cf, describe_models
from tests.tasks.reports.run_files import BASELINES, CONTEXT, EASE_CONFIG, POLICY


def test_descriptions_come_from_the_run_files():
    described = describe_models(POLICY, CONTEXT)
    assert described["tuned_policy"].startswith(
        "hybrid of EASE (lambda 3,000, ratings below 3 dropped) and content similarity; "
        "content weight cold 0.2, light 0.4, medium 0.6, heavy 0.4;"
    )
    assert described["tuned_policy"].endswith("(tuned on validation, 18 trials)")
    assert described["ease"].startswith("EASE, lambda 3,000, ratings below 3 dropped")
    assert (
        "ALS, 174 factors, regularization 0.0144, 15 iterations, binary confidence"
        in described["als"]
    )
    assert described["als"].endswith(
        "(tuned on validation, 18 trials, cut short by its time budget)"
    )
    assert (
        "ALS (20 factors, regularization 0.05, 15 iterations, confidence 1 + 10 x rating"
        in described["seed_policy"]
    )
    assert (
        "MMR diversity weight 0.25; boosts quality 0.05, recency 0.03, provider 0.02"
        in described["seed_policy"]
    )
    assert "tfidf embeddings, 384 dimensions" in described["content"]
    # change the record, the words follow
    other = {**BASELINES, "ease": {**BASELINES["ease"], "config": {**EASE_CONFIG, "ease_lambda": 250.0,
                                                                    "min_rating": 0.0}, "trials": 5}}  # fmt: skip
    again = describe_models(POLICY, {**CONTEXT, "baselines": other})["ease"]
    assert (
        again.startswith("EASE, lambda 250, every rating counts as a positive")
        and "5 trials" in again
    )
    assert describe_cf(
        {"model": "item_knn", "knn_k": 7, "knn_weighting": "bm25", "min_rating": 4.0}
    ) == ("item kNN, 7 neighbours per film, bm25 similarity, ratings below 4 dropped")
