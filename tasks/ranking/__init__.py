"""The ranking engine: the one path from a CF model and content features to a user's list.

Place in the pipeline: every stage that ranks calls it - the tuning trials (validation), the
candidates stage, the evaluation (test), case studies, edge cases - and so does
``movierec recommend``; nothing else ranks. Per user: a candidate pool (CF seeds + content
expansion, hard filters with a two-step relaxation ladder), every signal z-scored over the pool
and blended with the cohort's content weight alpha, boosts, the best ``mmr_pool`` re-scored with
exact content, MMR with ``lambda_div`` as the weight of diversity, top-k.

Modules: ``_arrays`` (what a ranking reads), ``_policy`` (the knobs), ``_filters``, ``_pools``,
``_scores`` (the formula), ``_mmr``, ``_topk``, ``_engine`` (batch APIs), ``_baselines``
(single-signal lists), ``_serve`` (one user).
"""

from tasks.ranking._arrays import (
    CONTENT_RANK,
    MMR_RANK,
    RecommenderArrays,
    best_recent_items,
    cf_folder,
    principal_basis,
    run_profile,
)
from tasks.ranking._baselines import cf_lists, content_lists, popularity_lists, popularity_order
from tasks.ranking._engine import (
    TASK_USERS,
    PoolParts,
    Variant,
    build_pools,
    concat_results,
    fork_map,
    rank_batch,
    rank_users,
    rank_variants,
    rerank,
    score_pools,
)
from tasks.ranking._filters import (
    STEP_NAMES,
    apply_filters,
    filter_levels,
    relaxation_steps,
    resolve_names,
    row_coords,
)
from tasks.ranking._mmr import minmax_rows, mmr_rerank, mmr_select
from tasks.ranking._policy import (
    MMR_POOL_FACTOR,
    POLICY_FILE,
    POLICY_VERSION,
    RankingPolicy,
    policy_alphas,
    read_policy,
)
from tasks.ranking._pools import (
    SUB_BATCH,
    CandidatePool,
    PoolContext,
    Workspace,
    concat_pools,
    generate_candidates,
    generate_pool,
    pool_context,
)
from tasks.ranking._scores import apply_zscore, pool_zscores
from tasks.ranking._serve import candidates_frame, explain, recommend_for_user
from tasks.ranking._topk import top_k_columns

__all__ = [
    "CONTENT_RANK",
    "MMR_POOL_FACTOR",
    "MMR_RANK",
    "POLICY_FILE",
    "POLICY_VERSION",
    "STEP_NAMES",
    "SUB_BATCH",
    "TASK_USERS",
    "CandidatePool",
    "PoolContext",
    "PoolParts",
    "RankingPolicy",
    "RecommenderArrays",
    "Variant",
    "Workspace",
    "apply_filters",
    "apply_zscore",
    "best_recent_items",
    "build_pools",
    "candidates_frame",
    "cf_folder",
    "cf_lists",
    "concat_pools",
    "concat_results",
    "content_lists",
    "explain",
    "filter_levels",
    "fork_map",
    "generate_candidates",
    "generate_pool",
    "minmax_rows",
    "mmr_rerank",
    "mmr_select",
    "policy_alphas",
    "popularity_lists",
    "popularity_order",
    "pool_context",
    "pool_zscores",
    "principal_basis",
    "rank_batch",
    "rank_users",
    "rank_variants",
    "read_policy",
    "recommend_for_user",
    "relaxation_steps",
    "rerank",
    "resolve_names",
    "row_coords",
    "run_profile",
    "score_pools",
    "top_k_columns",
]
