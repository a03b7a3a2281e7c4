"""Synthetic MovieLens-like data: the default source of the ingest stage.

``generate_synthetic`` builds, deterministically from a seed, a catalog (titles with release years,
MovieLens genres, latent "niches", tags, streaming providers) and a ratings log with the structure a
recommender should find: long-tailed user activity and movie popularity, users whose genre and
niche tastes decide which movies they rate and how highly, per-user sessions and a slow taste drift
over time. ``write_movielens_format`` writes it as an ml-latest-small folder (``ratings.csv``,
``movies.csv``, ``tags.csv``, ``links.csv``, plus ``providers.csv``), so the same MovieLens reader
ingests real and synthetic data; ``movierec generate`` is the command that does both.

The model, per user u and rating slot s (slot order = time order, t_s in [0, 1]):

- a movie m has a popularity ``pop_m`` (lognormal), genres (Gumbel top-k over MovieLens genre
  frequencies), one niche (latent theme tied to genres and era), a quality bias ``q_m``;
- u has a component mix ``pi_u(t)`` over 19 genres + K niches + a "popular" background:
  ``pi_u(t) = [w_g * theta_u(t), w_n * phi_u, w_b]`` with ``theta_u(t)`` drawn from
  ``theta1_u`` or (with probability ``DRIFT * t``) from a second mix ``theta2_u`` (taste drift);
- slot s draws a component c ~ pi_u(t_s), then a movie m ~ pop_m * [m in c] restricted to movies
  released by the slot's year; duplicates are re-drawn (a few rounds), then filled uniformly;
- rating = clip(round_half(mu + b_u + q_m + s_u * (1.1 * (a_g - 0.5) + 0.7 * (a_n - 0.5)) + e)),
  where a_g = max over m's genres of theta_u(t)[g] / max theta_u(t) and a_n = phi_u[niche_m] /
  max phi_u; users with a whole-star habit, and every rating before 2003-02-18 (when MovieLens
  introduced half stars), are rounded to whole stars.

Everything is vectorised over users in batches of about a million ratings (no per-rating or
per-user Python loops); each batch has its own random stream, so the output depends only on the seed.

Modules: the generator's parts - ``_catalog`` (movies), ``_users``, ``_ratings`` (one user batch
at a time), ``_metadata`` (tags, providers, the movies table) - on ``_sampling`` (random streams
and samplers); ``_generate`` (:func:`generate_synthetic`, :func:`true_genre_preferences`) and
``_writer`` (:func:`write_movielens_format`).
"""

from tasks.synthetic._generate import SyntheticData, generate_synthetic, true_genre_preferences
from tasks.synthetic._metadata import PROVIDERS
from tasks.synthetic._writer import write_movielens_format

__all__ = [
    "PROVIDERS",
    "SyntheticData",
    "generate_synthetic",
    "true_genre_preferences",
    "write_movielens_format",
]
