"""Run profiles: the only source of knobs.

A profile is a TOML file in ``profiles/`` parsed into one frozen pydantic model, :class:`RunProfile`,
with a section per stage. Unknown keys are errors (``extra="forbid"``), reported with the key and the
file. A profile may ``extends = "other"`` to start from another profile's values.

Overrides, applied in this order after the file: the old system's environment variables
(``POLICY_ALPHA_COLD/LIGHT/MEDIUM/HEAVY``, ``EVAL_K_VALUES``, ``EVAL_SEED``), then
``--set section.key=value`` from the command line (values parsed as TOML, so ``0.3``,
``[5,10]`` and ``"text"`` work; a bare word is taken as a string).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "PROFILES_DIR",
    "ProfileError",
    "RunProfile",
    "available_profiles",
    "setting_names",
    "load_profile",
    "parse_set_overrides",
]

#: Where the shipped profiles live (the repository's ``profiles/`` folder).
PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"

ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "POLICY_ALPHA_COLD": ("policy", "alpha_cold"),
    "POLICY_ALPHA_LIGHT": ("policy", "alpha_light"),
    "POLICY_ALPHA_MEDIUM": ("policy", "alpha_medium"),
    "POLICY_ALPHA_HEAVY": ("policy", "alpha_heavy"),
    "EVAL_K_VALUES": ("eval", "k_values"),
    "EVAL_SEED": ("eval", "seed"),
}


class ProfileError(ValueError):
    """A profile file or override is invalid; the message names the file, the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: A random seed: numpy's generators take 0 ... 2^32 - 1 here (a negative seed fails inside a stage).
Seed = Annotated[int, Field(ge=0, le=2**32 - 1, description="random seed, 0 to 4294967295")]


class RunSection(_Section):
    """Run-wide settings."""

    seed: Seed = 42
    description: str = ""
    runner: Literal["thread", "dask"] = "thread"
    runner_address: str | None = None
    dask_workers: int = Field(2, ge=1)


class DataSection(_Section):
    """Where the ratings come from: the built-in generator or a MovieLens folder."""

    source: Literal["synthetic", "movielens"] = "synthetic"
    data_dir: str | None = None
    format: Literal["auto", "ml-latest", "ml-100k", "ml-1m", "ml-10m"] = "auto"


class SyntheticSection(_Section):
    """Scale and shape of the synthetic generator (``movierec generate``)."""

    n_users: int = Field(20_000, ge=10)
    n_movies: int = Field(8_000, ge=20)
    n_ratings: int = Field(1_500_000, ge=100)
    provider_share: float = Field(0.4, ge=0.0, le=1.0)
    tag_share: float = Field(0.3, ge=0.0, le=1.0)
    start_year: int = 1995
    end_year: int = 2023


class IngestSection(_Section):
    """Input checks for ingest (plausible timestamp window, in seconds since the epoch)."""

    min_timestamp: int = 788_918_400  # 1995-01-01, before MovieLens's first rating
    max_timestamp: int = 4_102_444_800  # 2100-01-01: catches millisecond timestamps
    validation_sample_rows: int = Field(2_000_000, ge=1000)
    min_users: int = Field(
        10,
        ge=0,
        description="fewest users with 2+ ratings (one to train on, one to test) a run accepts; "
        "0 turns the check off (tests of file formats with a handful of rows)",
    )


class SplitSection(_Section):
    """Temporal holdout, relevance and activity cohorts."""

    method: Literal["per_user", "global"] = "per_user"
    holdout_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    min_holdout: int = Field(1, ge=1)
    global_cut_quantile: float = Field(0.8, gt=0.0, lt=1.0)
    relevance_threshold: float = 4.0
    cold_max: int = Field(5, ge=0)
    light_max: int = Field(20, ge=1)
    medium_max: int = Field(100, ge=2)
    simulated_cold_share: float = Field(0.1, ge=0.0, le=1.0)
    simulated_cold_min: int = Field(1, ge=1)
    simulated_cold_max: int = Field(5, ge=1)
    validation_fraction: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="per_user: share of each user's training ratings held out for validation "
        "(the last ones by time, same rule as the test holdout); None = holdout_fraction",
    )
    validation_cut_quantile: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="global: the validation cut as a quantile of the training timestamps; "
        "None = global_cut_quantile",
    )

    @model_validator(mode="after")
    def _ordered(self) -> SplitSection:
        if not self.cold_max < self.light_max < self.medium_max:
            raise ValueError("cohort thresholds must satisfy cold_max < light_max < medium_max")
        if self.simulated_cold_min > self.simulated_cold_max:
            raise ValueError("simulated_cold_min must be <= simulated_cold_max")
        return self


class ContentSection(_Section):
    """Content embeddings and item neighbours."""

    encoder: Literal["tfidf", "minilm"] = "tfidf"
    embedding_size: int = Field(384, ge=2)
    k_neighbors: int = Field(50, ge=1)
    year_bucket_size: int = Field(10, ge=1)
    bayes_prior_weight: float = Field(10.0, ge=0.0)
    block_size: int = Field(2048, ge=16)


class CollabSection(_Section):
    """Collaborative model: the CF part of the hybrid (and, as tuned by ``[tuning]``, the CF-only
    baselines). The formulas are in :mod:`tasks.cf`.

    - ``als``: implicit-feedback ALS (implicit), ``p_ui = 1`` for every kept rating, confidence
      ``c_ui = 1 + confidence_alpha * w_ui`` with ``w_ui`` = 1 (``binary``), ``r_ui`` (``linear``),
      ``log(1 + r_ui)`` (``log``), or the BM25 / TF-IDF weight of the binary matrix.
    - ``ease``: EASE (Steck 2019), ``B = I - P diag(1 / diag P)``, ``P = (X^T X + ease_lambda I)^-1``
      on the binary matrix X; refused above ``ease_max_items`` items (its item x item matrix is
      dense).
    - ``item_knn``: item-item nearest neighbours (implicit's cosine / BM25 / TF-IDF
      recommenders), ``knn_k`` neighbours per item; score = X_u S.
    - ``puresvd``: truncated SVD of the rating matrix.

    ``min_rating``: ratings below it are dropped before fitting (0 keeps every rating as a
    positive, so a 1-star rating counts as interest).
    """

    model: Literal["als", "ease", "item_knn", "puresvd"] = "als"
    min_rating: float = Field(
        0.0, ge=0.0, description="ratings below this are dropped before fitting (0 = keep all)"
    )
    factors: int = Field(20, ge=1)
    regularization: float = Field(0.05, ge=0.0)
    iterations: int = Field(15, ge=1)
    confidence: Literal["binary", "linear", "log", "bm25", "tfidf"] = "linear"
    confidence_alpha: float = Field(10.0, ge=0.0)
    ease_lambda: float = Field(100.0, gt=0.0)
    ease_max_items: int = Field(
        20_000, ge=1, description="EASE is refused above this many items (dense item x item matrix)"
    )
    knn_k: int = Field(20, ge=1)
    knn_weighting: Literal["cosine", "bm25", "tfidf"] = "cosine"


class PolicySection(_Section):
    """Content weight alpha per activity cohort: score = alpha*content + (1-alpha)*collab."""

    alpha_cold: float = Field(0.15, ge=0.0, le=1.0)
    alpha_light: float = Field(0.4, ge=0.0, le=1.0)
    alpha_medium: float = Field(0.6, ge=0.0, le=1.0)
    alpha_heavy: float = Field(0.8, ge=0.0, le=1.0)

    def as_dict(self) -> dict[str, float]:
        return {
            "cold": self.alpha_cold,
            "light": self.alpha_light,
            "medium": self.alpha_medium,
            "heavy": self.alpha_heavy,
        }


class CandidatesSection(_Section):
    """Candidate generation, filters and re-ranking: the SEED policy's knobs (the search starts
    from them and may change n_cf_seed, the boost weights and lambda_div; the run's chosen values
    are in ``tuning/policy.json``). Formulas: ``hybrid/scoring_schema.md`` of a run, and
    :mod:`tasks.ranking`.

    ``lambda_div`` is the weight of DIVERSITY in MMR:
    ``next = argmax (1 - lambda_div) * rel_i - lambda_div * max_sim``; 0 = score order.
    """

    n_cf_seed: int = Field(800, ge=1, description="CF seeds per candidate pool")
    m_seed_items: int = Field(20, ge=1, description="recent liked items whose neighbours join the pool")
    k_neighbors: int = Field(50, ge=1, description="neighbours per seed item")
    c_max: int = Field(1200, ge=1, description="largest pool")
    w_q: float = Field(0.05, ge=0.0, description="weight of the quality boost (z-scored)")
    w_r: float = Field(0.03, ge=0.0, description="weight of the recency boost (z-scored)")
    w_p: float = Field(0.02, ge=0.0, description="weight of the provider-match boost (z-scored)")
    lambda_div: float = Field(0.25, ge=0.0, le=1.0, description="MMR weight of diversity (0 = score order)")
    k_final: int = Field(50, ge=1, description="length of every served and evaluated list")
    sample_users: int = Field(20, ge=0, description="users whose lists the candidates stage writes")
    batch_size: int = Field(2000, ge=1)


class TuningSection(_Section):
    """The search (stage ``tuning``), on the validation split only; see :mod:`tasks.tuning`.

    Every study - the policy and each tuned baseline - gets the same budget: ``n_trials`` trials
    and ``budget_seconds`` seconds (a study past its time budget stops after the running trial,
    keeps its best so far, and the run says so: the decision is then NEEDS WORK at best).
    """

    n_trials: int = Field(30, ge=1, description="trials per study (the policy and each tuned baseline)")
    budget_seconds: float = Field(900.0, gt=0, description="time budget per study, seconds")
    metric: Literal["recall", "map", "ndcg"] = Field("recall", description="objective at K = 10")
    seed: Seed = 42
    max_validation_users: int = Field(
        0, ge=0, description="score a seeded sample of this many validation users (0 = all)"
    )
    models: tuple[Literal["als", "ease", "item_knn"], ...] = Field(
        ("als", "ease", "item_knn"), description="CF models the policy search may use"
    )
    baselines: tuple[Literal["popularity", "item_knn", "ease", "als"], ...] = Field(
        ("popularity", "item_knn", "ease", "als"), description="baselines tuned with the same budget"
    )
    alpha_grid: tuple[float, ...] = Field(
        (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
        description="content weights tried per cohort inside every policy trial; keep 0.0 on it: "
        "then the search cannot end below the best tuned CF baseline on validation",
    )

    @field_validator("alpha_grid")
    @classmethod
    def _alpha_range(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(not 0.0 <= a <= 1.0 for a in value):
            raise ValueError(f"every alpha must be within [0, 1], got {list(value)}")
        return tuple(dict.fromkeys(float(a) for a in value))

    @field_validator("models")
    @classmethod
    def _some_model(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("the policy search needs at least one CF model")
        return tuple(dict.fromkeys(value))


class EvalSection(_Section):
    """Evaluation on test (every test user, once): cut-offs, batches, bootstrap."""

    k_values: tuple[int, ...] = (5, 10, 20, 50)
    seed: Seed = 42
    batch_size: int = Field(5000, ge=1)
    bootstrap_samples: int = Field(1000, ge=10)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    sample_users: int = Field(0, ge=0, description="0 = every test user")

    @field_validator("k_values", mode="before")
    @classmethod
    def _parse_k_values(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return tuple(int(v) for v in value.replace(" ", "").split(",") if v)
            except ValueError as exc:
                raise ValueError(f"k_values must be integers like '5,10,20,50', got {value!r}") from exc
        return value

    @field_validator("k_values")
    @classmethod
    def _positive_k(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(k < 1 for k in value):
            raise ValueError(f"every K must be >= 1, got {list(value)}")
        return tuple(sorted(set(value)))


class CaseStudiesSection(_Section):
    """Case studies (stage ``case_studies``): selection and the error-taxonomy rules.

    Each rule is evaluated for every evaluated user on the tuned policy's top-``k`` list (the
    list the evaluation scored); the formulas live in :mod:`tasks.case_studies`. A rule whose
    inputs are missing (no training history, no known years, no genres) does not flag the user.

    - redundancy (lists of >= 2 items): ``ILD@k < redundancy_max_ild`` (ILD = 1 - mean pairwise
      cosine of the content embeddings) OR ``max_s |{i in list : genres(i) = s}| / |list| >
      redundancy_max_same_genres_share`` (one identical, non-empty genre set covers more than
      that share of the list).
    - temporal drift: ``|mean release year of the list - mean release year of the user's
      temporal_recent_n most recent training ratings| > temporal_drift_years``.
    - popularity bias: ``mean training-rating count of the list's items / mean training-rating
      count of the user's training items > popularity_bias_ratio``.
    - genre mismatch: ``sum_g min(h_g, r_g) < genre_mismatch_max_overlap``, ``h`` / ``r`` the
      genre distributions of the user's training items / of the list (each item spreads weight 1
      evenly over its genres; histogram intersection, 0 = disjoint, 1 = identical).
    - cold-start miss: cohort ``cold`` and no hit in the top ``k``.
    - filter over-constraint: with the case-study filter (the user's most-watched training genre,
      plus ``filter_providers`` when given), fewer than ``k`` unseen movies match, so the
      relaxation ladder (tasks.candidates.relaxation_steps) needs step >= 1.
    """

    n_cases: int = Field(
        24, ge=0, description="users shown with a triptych, spread over cohorts and outcomes"
    )
    k: int = Field(10, ge=1, description="list length the taxonomy and the triptychs look at")
    redundancy_max_ild: float = Field(
        0.6, ge=0.0, le=2.0, description="redundant when ILD@k is below this"
    )
    redundancy_max_same_genres_share: float = Field(
        0.5, ge=0.0, le=1.0, description="redundant when one genre set covers more of the list"
    )
    temporal_recent_n: int = Field(
        10, ge=1, description="most recent training ratings that define the user's recent years"
    )
    temporal_drift_years: float = Field(
        15.0, ge=0.0, description="drift when the mean release years differ by more than this"
    )
    popularity_bias_ratio: float = Field(
        2.0, ge=1.0, description="bias when the list is more than this times as popular"
    )
    genre_mismatch_max_overlap: float = Field(
        0.5, ge=0.0, le=1.0, description="mismatch when the genre histogram intersection is lower"
    )
    filter_providers: tuple[str, ...] = Field(
        (), description="providers added to the case-study filter (over-constraint rule)"
    )
    triptych_history_n: int = Field(
        12, ge=2, description="history lines in a triptych: half most recent, half top rated"
    )
    triptych_held_out_n: int = Field(
        20, ge=1, description="held-out lines in a triptych (hits first, then relevant)"
    )


class EdgeCasesSection(_Section):
    """Edge-case scenarios (stage ``edge_cases``)."""

    min_pass_rate: float = Field(0.8, ge=0.0, le=1.0, description="gate: share of scenarios that pass")
    heavy_user_ratings: int = Field(10_000, ge=1)
    tiny_budget_seconds: float = Field(1.0, gt=0)
    heavy_user_budget_seconds: float = Field(30.0, gt=0)
    memory_budget_mb: float = Field(
        256.0, gt=0, description="RSS growth budget of the memory scenario's job (sets its batch size)"
    )
    scenario_time_limit_seconds: float = Field(
        120.0, gt=0, description="each scenario runs in its own child, stopped (and failed) after this"
    )
    only: tuple[str, ...] = Field((), description="run only these scenario ids (empty = all)")


class SignoffSection(_Section):
    """Sign-off thresholds; the decision (stage ``handoff``, :mod:`tasks.signoff`) is computed
    against them from the run's own files.

    Gates: the tuned policy's test Recall@10 lift over the best baseline is at least ``min_lift``
    and the paired 95% CI of the difference is above 0 (REJECT when it is entirely below 0); no
    cohort significantly worse than its best baseline; a search not cut short by its budget;
    ``min_recall_at_10`` / ``min_map_at_10`` are absolute floors, off by default (None: the old
    system's 0.30 / 0.25 were never measured, the final report shows them beside the measured
    values instead); user coverage at K=10 at least ``min_user_coverage``; the edge-case pass rate at
    least ``edge_cases.min_pass_rate``; the artifact validation rate at least
    ``min_artifact_validation`` (REJECT below); no significant regression against the baseline run
    when one was compared (``require_no_regression``). The inventory (stage ``inventory``)
    validates tables of more than ``inventory_sample_rows`` rows on a seeded sample.
    """

    min_lift: float = Field(
        0.0, description="the tuned policy's relative Recall@10 lift over the best baseline, at least"
    )
    min_recall_at_10: float | None = Field(
        None, ge=0.0, le=1.0, description="absolute floor (off by default: see the final report)"
    )
    min_map_at_10: float | None = Field(None, ge=0.0, le=1.0, description="absolute floor (off by default)")
    min_user_coverage: float = Field(0.85, ge=0.0, le=1.0)
    min_artifact_validation: float = Field(0.95, ge=0.0, le=1.0)
    require_no_regression: bool = Field(
        True, description="a significant regression (eval/regression.json) blocks APPROVE"
    )
    inventory_sample_rows: int = Field(2_000_000, ge=1000)


class NightlySection(_Section):
    """The ``nightly-reevaluation`` deployment (schedule) and the ``regression`` stage, which every
    run executes: the tuned policy's per-user metrics at ``k`` compared per cohort with a baseline
    run of the same profile (see :mod:`tasks.regression`).
    """

    cron: str = Field("0 2 * * *", description="schedule of the nightly-reevaluation deployment")
    timezone: str = "UTC"
    compare_with: Literal["last_approved", "previous"] = Field(
        "last_approved",
        description="baseline: newest complete run whose sign-off is APPROVE (none approved: the "
        "newest complete run, and the report says so), or the newest complete run",
    )
    model: str = Field("tuned_policy", description="model whose per-user metrics are compared")
    metrics: tuple[Literal["recall", "map", "ndcg"], ...] = ("recall", "map", "ndcg")
    k: int = Field(10, ge=1, description="cut-off K of the compared metrics")
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    family_wise: bool = Field(
        True, description="Bonferroni: each interval at 1 - (1 - confidence) / number of comparisons"
    )
    min_drop: float = Field(0.0, ge=0.0, description="ignore drops smaller than this (absolute)")
    bootstrap_samples: int = Field(1000, ge=10)
    seed: Seed = 42
    min_users: int = Field(2, ge=2, description="cohorts with fewer users in either run are not compared")


class BudgetsSection(_Section):
    """Wall-time budgets in seconds. A stage over budget is stopped (its child process is killed).

    Kept out of every stage's cache key: changing a budget never invalidates results.
    """

    flow: float = Field(3600.0, gt=0)
    ingest: float = Field(600.0, gt=0)
    split: float = Field(600.0, gt=0)
    features: float = Field(600.0, gt=0)
    collaborative: float = Field(600.0, gt=0)
    candidates: float = Field(900.0, gt=0)
    tuning: float = Field(3600.0, gt=0)
    evaluation: float = Field(1800.0, gt=0)
    regression: float = Field(300.0, gt=0)
    case_studies: float = Field(600.0, gt=0)
    edge_cases: float = Field(600.0, gt=0)
    handoff: float = Field(600.0, gt=0)
    inventory: float = Field(900.0, gt=0)


class RunProfile(_Section):
    """One resolved run profile (a section per stage)."""

    name: str = "demo"
    run: RunSection = RunSection()
    data: DataSection = DataSection()
    synthetic: SyntheticSection = SyntheticSection()
    ingest: IngestSection = IngestSection()
    split: SplitSection = SplitSection()
    content: ContentSection = ContentSection()
    collab: CollabSection = CollabSection()
    policy: PolicySection = PolicySection()
    candidates: CandidatesSection = CandidatesSection()
    tuning: TuningSection = TuningSection()
    eval: EvalSection = EvalSection()
    case_studies: CaseStudiesSection = CaseStudiesSection()
    edge_cases: EdgeCasesSection = EdgeCasesSection()
    signoff: SignoffSection = SignoffSection()
    nightly: NightlySection = NightlySection()
    budgets: BudgetsSection = BudgetsSection()

    def to_toml(self) -> str:
        """The resolved profile as TOML (written into every run directory)."""
        return _to_toml(self.model_dump(mode="json"))


def setting_names() -> list[str]:
    """Every setting an override may name: ``section.key`` for each field of each section.

    >>> "eval.batch_size" in setting_names() and "signoff.min_lift" in setting_names()
    True
    """
    return sorted(
        f"{section}.{key}"
        for section, field in RunProfile.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        for key in field.annotation.model_fields
    )


def available_profiles(profiles_dir: Path = PROFILES_DIR) -> list[str]:
    """Names of the profiles shipped in ``profiles/``."""
    return sorted(p.stem for p in profiles_dir.glob("*.toml"))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML ({exc}). Fix the syntax of that line.") from exc
    except UnicodeDecodeError as exc:
        raise ProfileError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}). Save the profile as UTF-8."
        ) from None
    except IsADirectoryError:
        raise ProfileError(
            f"{path} is a folder, not a profile file: give a profile name (e.g. --profile demo) "
            "or the path of a .toml file."
        ) from None
    except OSError as exc:
        raise ProfileError(
            f"{path}: cannot be read ({exc.strerror or exc}). Check its permissions."
        ) from None


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _resolve_file(name_or_path: str, profiles_dir: Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.is_dir():
        raise ProfileError(
            f"{name_or_path} is a folder, not a profile: give a profile name (e.g. --profile demo) "
            "or the path of a .toml file."
        )
    if candidate.suffix == ".toml" and candidate.exists():
        return candidate
    path = profiles_dir / f"{name_or_path}.toml"
    if not path.exists():
        names = ", ".join(available_profiles(profiles_dir)) or "(none)"
        raise ProfileError(
            f"profile {name_or_path!r} not found: no file {path}. Available profiles: {names}."
        )
    return path


def _load_raw(name_or_path: str, profiles_dir: Path, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    path = _resolve_file(name_or_path, profiles_dir)
    if str(path) in seen:
        raise ProfileError(f"{path}: 'extends' forms a cycle ({' -> '.join(seen)}).")
    raw = _read_toml(path)
    parent = raw.pop("extends", None)
    raw.setdefault("name", path.stem)
    if parent:
        base = _load_raw(str(parent), profiles_dir, (*seen, str(path)))
        base.pop("name", None)
        raw = _deep_merge(base, raw)
    return raw


def parse_set_overrides(assignments: Iterable[str]) -> dict[str, Any]:
    """Parse ``section.key=value`` strings into a nested dict (values parsed as TOML)."""
    nested: dict[str, Any] = {}
    given: dict[str, str] = {}  # dotted key -> the --set argument that set it
    for item in assignments:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ProfileError(
                f"--set {item!r}: expected section.key=value, for example --set eval.batch_size=2000."
            )
        dotted, text = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # a bare word such as als or Comedy
        parts = [part.strip() for part in dotted.split(".")]
        if not all(parts):
            raise ProfileError(
                f"--set {item!r}: empty name in '{dotted}'; expected section.key=value, for "
                "example --set eval.batch_size=2000."
            )
        target = nested
        for depth, part in enumerate(parts[:-1]):
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ProfileError(
                    f"--set {item!r} conflicts with --set {given[prefix]!r}: '{prefix}' is one "
                    "setting, not a section. Keep one of the two."
                )
        if isinstance(target.get(parts[-1]), dict):
            raise ProfileError(
                f"--set {item!r}: '{'.'.join(parts)}' is a section that other --set arguments "
                "fill; give one setting of it (section.key=value)."
            )
        target[parts[-1]] = value
        given[".".join(parts)] = item
    return nested


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for var, (section, key) in ENV_OVERRIDES.items():
        if var in environ and environ[var].strip():
            text = environ[var].strip()
            value: Any = text
            if key != "k_values":
                try:
                    value = float(text) if "." in text or key.startswith("alpha") else int(text)
                except ValueError:
                    raise ProfileError(
                        f"environment variable {var}={text!r} is not a number; unset it or give a number."
                    ) from None
            nested.setdefault(section, {})[key] = value
    return nested


def _describe_errors(
    exc: ValidationError,
    source: str,
    from_set: Mapping[str, str] | None = None,
    from_env: Mapping[str, str] | None = None,
) -> str:
    """One line per error: the setting, the problem and the fix - naming the ``--set`` argument or
    the environment variable when the value came from there, else the profile file."""
    from_set, from_env = from_set or {}, from_env or {}
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        origin = next(
            (
                f"--set {arg}"
                for key, arg in from_set.items()
                if key == where or key.startswith(f"{where}.") or where.startswith(f"{key}.")
            ),
            None,
        ) or next((f"environment variable {var}" for key, var in from_env.items() if key == where), None)
        if err["type"] == "extra_forbidden":
            named = f"{origin}: " if origin else ""
            lines.append(f"  {named}unknown key '{where}': not a setting; check the spelling (see tasks/profile.py)")
            continue
        msg = str(err["msg"]).removeprefix("Value error, ")
        setting = "." in where  # a single key (not a whole section's rule)
        got = f" (got {err.get('input')!r})" if setting and "got" not in msg else ""
        if origin:
            lines.append(f"  {origin}: '{where}': {msg}{got}. Fix: give another value.")
            continue
        fix = f"Fix: correct it in {source}"
        if setting:
            fix += f" or pass --set {where}=VALUE"
        lines.append(f"  '{where}': {msg}{got}. {fix}.")
    origins = "" if not (from_set or from_env) else " with its overrides"
    return f"invalid profile {source}{origins}:\n" + "\n".join(lines)


def load_profile(
    name: str = "demo",
    overrides: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    profiles_dir: Path = PROFILES_DIR,
) -> RunProfile:
    """Load ``profiles/<name>.toml`` (or a path), apply env and ``--set`` overrides, validate."""
    raw = _load_raw(name, profiles_dir)
    path = _resolve_file(name, profiles_dir)
    environ = os.environ if environ is None else environ
    raw = _deep_merge(raw, _env_overrides(environ))
    overrides = list(overrides)
    raw = _deep_merge(raw, parse_set_overrides(overrides))
    from_set = {item.split("=", 1)[0].strip(): item for item in overrides}
    from_env = {
        f"{section}.{key}": var
        for var, (section, key) in ENV_OVERRIDES.items()
        if environ.get(var, "").strip()
    }
    try:
        return RunProfile.model_validate(raw)
    except ValidationError as exc:
        raise ProfileError(_describe_errors(exc, str(path), from_set, from_env)) from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _to_toml(data: Mapping[str, Any]) -> str:
    top = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping) and v is not None]
    blocks = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            body = [f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None]
            blocks.append(f"[{key}]\n" + "\n".join(body))
    return "\n".join(top) + "\n\n" + "\n\n".join(blocks) + "\n"
