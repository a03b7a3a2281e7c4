"""The ``features`` stage (part of :mod:`tasks.content`): read the movies and the training
ratings, build the features, validate them (blocking), write them.
"""

from __future__ import annotations

from typing import Any

from tasks.columns import Col
from tasks.content._features import ContentFeatures, build_content_features
from tasks.content._files import FILES, embedding_row_table, neighbor_table, save_content_features
from tasks.io import ArtifactRef, read_table
from tasks.profile import ContentSection
from tasks.stage import StageOutput, run_stage_core, stage_task

__all__ = ["build_features", "features_core"]


def _validate(features: ContentFeatures) -> dict[str, Any]:
    """Run the derived-table suites (blocking on failure)."""
    from tasks.validation import require_valid

    return {
        "embeddings": require_valid(
            embedding_row_table(features.embeddings),
            "embeddings",
            source=FILES["content_embeddings"],
        ),
        "item_neighbors": require_valid(
            neighbor_table(features.item_ids, features.neighbor_idx, features.neighbor_sim),
            "item_neighbors",
            source=FILES["item_neighbors"],
        ),
    }


def features_core(
    movies_path: str, train_path: str, cfg: ContentSection, seed: int, run_dir: str
) -> dict[str, Any]:
    """Pure core of the ``features`` stage: read inputs, build, validate, write; refs + facts."""
    from tasks.budget import report_progress

    movies = read_table(movies_path)
    train = read_table(train_path, columns=[Col.USER, Col.ITEM, Col.RATING])
    features = build_content_features(movies, train, cfg, seed, progress=report_progress)
    validation = _validate(features)
    refs = save_content_features(features, run_dir)
    facts = {
        "n_items": features.n_items,
        "embedding_dim": int(features.embeddings.shape[1]),
        "n_genres": len(features.genre_names),
        "n_providers": len(features.provider_names),
        "items_without_ratings": int((features.numeric["n_ratings"] == 0).sum()),
        **{k: v for k, v in features.info.items() if k not in {"genre_names", "provider_names"}},
    }
    if validation:
        facts["validation"] = validation
    return {"artifacts": refs, "facts": facts}


@stage_task("features")
def build_features(
    movies: ArtifactRef,
    train: ArtifactRef,
    cfg: ContentSection,
    seed: int,
    run_dir: str,
    budget_seconds: float,
) -> StageOutput:
    """Stage task ``features``: content embeddings, genres, numeric features, item neighbours."""
    result = run_stage_core(
        "features",
        budget_seconds,
        features_core,
        str(movies.path),
        str(train.path),
        cfg,
        seed,
        run_dir,
    )
    return StageOutput.from_result("features", result)
