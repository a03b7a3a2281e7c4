"""Case studies: an error taxonomy of every evaluated user, selected cases, triptych pictures.

Place in the pipeline: the ``case_studies`` stage (DESIGN.md step 9, seed 4.2), after
``evaluation`` (it reads ``eval/per_user.parquet``, the lists the evaluation scored) and
``tuning`` (the chosen policy, ``tuning/policy.json``); beside ``edge_cases``, which draws its
evidence with :func:`draw_triptych`.

Modules: ``_taxonomy`` (the six rules, vectorised over every user), ``_selection`` (cases per
outcome and cohort), ``_panels`` (what a case's triptych shows, with the score parts the ranking
engine recomputes), ``_triptych`` (drawing), ``_report`` (``reports/case_studies.md`` and its facts
table), ``_stage`` (the core and the Prefect task). Outputs: ``case_studies/taxonomy.parquet``
(suite ``case_studies``), ``case_studies/selected.parquet`` (``case_selection``),
``case_studies/user_<id>.png`` + ``.json`` and ``reports/case_studies.md``
(``case_studies_report``).
"""

from tasks.case_studies._panels import COLLAB_SOURCES, ScoreParts, case_panels, score_parts
from tasks.case_studies._report import CASE_FILES, case_report, report_facts
from tasks.case_studies._selection import OUTCOMES, select_cases
from tasks.case_studies._stage import (
    case_studies_core,
    recompute_lists,
    refs_from_run,
    study_cases,
)
from tasks.case_studies._taxonomy import (
    CATEGORIES,
    LIST_COLUMN,
    TAXONOMY_COLUMNS,
    Catalogue,
    category_shares,
    hit_rate_contrast,
    list_matrix,
    taxonomy_table,
)
from tasks.case_studies._triptych import (
    TRIPTYCH_DPI,
    TRIPTYCH_MAX_LINES,
    TRIPTYCH_SIZE_INCHES,
    TriptychPanels,
    draw_triptych,
    triptych_pixel_size,
)

__all__ = [
    "CASE_FILES",
    "CATEGORIES",
    "COLLAB_SOURCES",
    "LIST_COLUMN",
    "OUTCOMES",
    "TAXONOMY_COLUMNS",
    "TRIPTYCH_DPI",
    "TRIPTYCH_MAX_LINES",
    "TRIPTYCH_SIZE_INCHES",
    "Catalogue",
    "ScoreParts",
    "TriptychPanels",
    "case_panels",
    "case_report",
    "case_studies_core",
    "category_shares",
    "draw_triptych",
    "hit_rate_contrast",
    "list_matrix",
    "recompute_lists",
    "refs_from_run",
    "report_facts",
    "score_parts",
    "select_cases",
    "study_cases",
    "taxonomy_table",
    "triptych_pixel_size",
]
