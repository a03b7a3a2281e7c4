"""Column names used by every canonical table (one place, so a rename is one edit).

Canonical tables (parquet, see DESIGN.md "Contracts"):
- ratings / train / test: user_id int32, movie_id int32, rating float32, timestamp int64 (seconds)
- test additionally: relevant bool (rating >= the profile's relevance threshold)
- movies: movie_id int32, title string, year Int32 (nullable), genres list<string>,
  tags string, providers list<string>
- cohorts: user_id int32, n_train int32, cohort string, simulated_cold bool, n_train_fit int32,
  cohort_fit string (n_train / cohort counted on train_fit, the validation split's training part)
- validation: as test; train_fit: as train; dropped_history: user_id, movie_id, timestamp
"""

from __future__ import annotations

__all__ = ["Col", "COHORTS", "MOVIELENS_GENRES"]


class Col:
    """Column-name constants (RecTools style)."""

    USER = "user_id"
    ITEM = "movie_id"
    RATING = "rating"
    TIMESTAMP = "timestamp"
    RELEVANT = "relevant"

    TITLE = "title"
    YEAR = "year"
    GENRES = "genres"
    TAGS = "tags"
    PROVIDERS = "providers"

    N_TRAIN = "n_train"
    COHORT = "cohort"
    SIMULATED_COLD = "simulated_cold"
    N_TRAIN_FIT = "n_train_fit"
    COHORT_FIT = "cohort_fit"

    RANK = "rank"
    SCORE = "score"
    COLLAB = "collab"
    CONTENT = "content"
    BOOSTS = "boosts"
    RELAXATION_STEP = "relaxation_step"


#: Activity cohorts, from fewest to most training ratings.
COHORTS: tuple[str, ...] = ("cold", "light", "medium", "heavy")

#: MovieLens's genre label set (ml-latest-small uses these 19 plus "(no genres listed)").
MOVIELENS_GENRES: tuple[str, ...] = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
