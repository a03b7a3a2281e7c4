"""Program of the implicit worker process (run as a script by :class:`tasks.cf.ImplicitWorker`).

Not imported by the pipeline: ``ImplicitWorker`` starts ``python -P <this file> <parent pid>``, a
fresh interpreter that imports only numpy, scipy, threadpoolctl and implicit. Protocol:

- stdin: one JSON line per job, ``{"job": id, "kind": "als" | "knn", "dir": folder,
  "params": {...}}``; the inputs are ``.npy`` files in ``folder`` (a CSR ``x`` is
  ``x.data.npy``, ``x.indices.npy``, ``x.indptr.npy``, its shape in the params). EOF = stop.
- the message channel (the original stdout; fd 1 itself is pointed at stderr, so nothing a
  library prints can corrupt it): JSON lines ``{"event": "ready"}`` once, then per job any
  number of ``{"event": "progress", ...}`` and one ``{"event": "done", "outputs": [names]}``
  (outputs written as ``<name>.npy`` in the job folder) or ``{"event": "error", "traceback":
  text}``. A failed job does not stop the worker.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):  # SIGKILL when the parent (its starting thread) dies
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent_pid:  # the parent died before prctl: nobody wants a result
        sys.exit(3)


def main(argv: list[str]) -> int:
    _die_with_parent(int(argv[1]))
    channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # C-level writes to stdout land in the parent's stderr file
    sys.stdout = sys.stderr

    def send(message: dict) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    import implicit
    import numpy as np
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender, TFIDFRecommender
    from threadpoolctl import threadpool_limits

    def load_csr(folder: str, name: str, shape: list[int]) -> sp.csr_matrix:
        parts = {
            p: np.load(os.path.join(folder, f"{name}.{p}.npy"))
            for p in ("data", "indices", "indptr")
        }
        for p in parts:  # in memory now: a killed run leaves less on disk
            os.remove(os.path.join(folder, f"{name}.{p}.npy"))
        return sp.csr_matrix((parts["data"], parts["indices"], parts["indptr"]), shape=tuple(shape))

    def save(folder: str, arrays: dict) -> list[str]:
        for name, array in arrays.items():
            np.save(os.path.join(folder, f"{name}.npy"), np.ascontiguousarray(array))
        return sorted(arrays)

    def als(job: dict) -> list[str]:
        p = job["params"]
        confidence = load_csr(job["dir"], "confidence", p["shape"])
        total = int(p["iterations"])

        def on_iteration(iteration: int, elapsed: float, loss: float | None) -> None:
            send({"job": job["job"], "event": "progress", "done": iteration + 1, "total": total})

        model = AlternatingLeastSquares(
            factors=int(p["factors"]),
            regularization=float(p["regularization"]),
            alpha=1.0,  # the matrix values already are the confidence c_ui (see tasks/cf/_als.py)
            iterations=total,
            calculate_training_loss=False,
            num_threads=int(p["num_threads"]),
            random_state=int(p["seed"]),
        )
        model.fit(confidence, show_progress=False, callback=on_iteration)
        return save(
            job["dir"],
            {
                "user_factors": np.asarray(model.user_factors, np.float32),
                "item_factors": np.asarray(model.item_factors, np.float32),
            },
        )

    def knn(job: dict) -> list[str]:
        p = job["params"]
        counts = load_csr(job["dir"], "counts", p["shape"])
        kinds = {"cosine": CosineRecommender, "bm25": BM25Recommender, "tfidf": TFIDFRecommender}
        model = kinds[p["weighting"]](K=int(p["k"]), num_threads=int(p["num_threads"]))
        model.fit(counts, show_progress=False)
        s = model.similarity.tocsr()
        return save(
            job["dir"],
            {
                "similarity.data": s.data,
                "similarity.indices": s.indices,
                "similarity.indptr": s.indptr,
            },
        )

    def fail(job: dict) -> list[str]:  # for tests of the error path
        raise ValueError(job["params"].get("message", "this job fails on purpose"))

    jobs = {"als": als, "knn": knn, "fail": fail}
    send({"event": "ready", "pid": os.getpid(), "implicit": implicit.__version__})
    for line in sys.stdin:
        job = json.loads(line)
        try:
            run = jobs.get(job["kind"])
            if run is None:
                raise ValueError(f"unknown job kind {job['kind']!r}; known: {sorted(jobs)}")
            # multi-threaded OpenBLAS makes implicit up to 10x slower
            with threadpool_limits(1, "blas"):
                outputs = run(job)
            send({"job": job["job"], "event": "done", "outputs": outputs})
        except Exception:
            send({"job": job["job"], "event": "error", "traceback": traceback.format_exc()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
