"""What every stage child starts with, imported once per run by the forkserver the children are
forked from (:func:`tasks.budget.start_stage_server`), so no child imports it again. Imported by
that server only (pytest is told to ``--ignore`` it in pyproject.toml): on import the process asks
to die with its parent. The list is what most stages need (Great Expectations, Prefect, the stage
modules, scipy.stats); what only the long stages need is imported by them.

The server dies the moment the run's process does (``PR_SET_PDEATHSIG``, below), and each stage
child the moment the server does (:func:`tasks.budget.die_with_parent` in the child): a SIGKILL of
``movierec`` stops a stage's work at once. Without it the server only left at its next look at
its "alive" pipe, through a full interpreter shutdown (1.4 s quiet, over 3 s loaded), and the
stage child computed on meanwhile.

Measured on this 2-core machine: about 5.4 s for the list in a fresh interpreter (6.3 s with
pyplot, optuna and sklearn; Great Expectations alone 3.6 s), against 0.05 s to fork a child from the server once it has
them. Importing these starts no Python thread: the server stays single-threaded in Python, which
is what makes its forks safe (no lock of a Python thread can be held at a fork). Native pools do
start (OpenBLAS's, jemalloc's background thread of pyarrow); they register their own fork
handlers.
"""

from tasks.budget import die_with_parent

die_with_parent()

import matplotlib  # noqa: E402

matplotlib.use("Agg")

# Not here: matplotlib.pyplot, optuna, sklearn (0.9 s together after the rest). Only the long
# stages that draw, search or embed need them (seconds to minutes of work each, so a third of a
# second of imports is lost in them); the stages of a cached re-run (regression, inventory,
# handoff) need none, and the first of them waits for this server to be ready.
import threading  # noqa: E402

import great_expectations  # noqa: E402, F401 - nearly every stage validates with it
import scipy.stats  # noqa: E402, F401 - confidence intervals and paired tests
from tqdm import tqdm  # noqa: E402

import tasks.candidates  # noqa: E402, F401 - the stage cores' modules (and Prefect, which they import)
import tasks.case_studies._stage  # noqa: E402, F401
import tasks.collaborative  # noqa: E402, F401
import tasks.content._stage  # noqa: E402, F401
import tasks.edge_cases._stage  # noqa: E402, F401
import tasks.evaluation._stage  # noqa: E402, F401
import tasks.handoff  # noqa: E402, F401
import tasks.ingest._stage  # noqa: E402, F401
import tasks.inventory._stage  # noqa: E402, F401
import tasks.regression  # noqa: E402, F401
import tasks.split  # noqa: E402, F401
import tasks.tuning._stage  # noqa: E402, F401

# Great Expectations draws tqdm progress bars; tqdm's default lock is a multiprocessing lock (a
# named semaphore) made on first use: one per child, which a child's os._exit never releases, so
# the resource tracker cleaned 11 of them per ci run with a warning at exit. A thread lock is all
# a child's own bars need.
tqdm.set_lock(threading.RLock())
