"""Tamper evidence for a run's manifest: its sha256, recorded on the Prefect server.

The manifest (``inventory/artifact_manifest.json``) lists every file of a run with its sha256, and
``movierec validate RUN_DIR`` re-hashes the files against it. Someone who edits a file *and* its
line in the manifest would pass that check. So the ``handoff`` flow, once it has written the final
manifest, records the manifest's own sha256 as a Prefect artifact of its flow run (key
``<profile>-manifest-seal-<run id>``, one version per handoff), outside the run directory, and
``movierec validate`` checks that the manifest's sha256 is one of those the server recorded.

Protects against: edits made in the run directory alone (files and manifest together), by anyone
who cannot write to the Prefect server. Does not protect against: someone who can use the
server's API or database (they can record a seal of their own); a run whose server record is gone
(another server, a deleted database), which ``validate`` reports as not checked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tasks.io import file_fingerprint
from tasks.manifest import MANIFEST

__all__ = ["check_seal", "publish_seal", "seal_key"]


def seal_key(run_dir: Path | str) -> str:
    """``<profile>-manifest-seal-<run id>`` in the characters Prefect allows in a key."""
    from flows.artifacts import artifact_key

    return artifact_key(run_dir, f"manifest-seal-{Path(run_dir).resolve().name}")


def publish_seal(run_dir: Path | str) -> str:
    """Record the sha256 of the run's manifest as a markdown artifact of this flow run; returns it."""
    from prefect.artifacts import create_markdown_artifact

    digest = file_fingerprint(Path(run_dir) / MANIFEST)
    create_markdown_artifact(
        key=seal_key(run_dir),
        markdown=(
            f"# Manifest seal\n\n`{MANIFEST}` of run `{Path(run_dir).name}`\n\n"
            f"sha256: `{digest}`\n\n`movierec validate RUN_DIR` checks the run's manifest "
            "against this record.\n"
        ),
        description=f"sha256 of the artifact manifest of {Path(run_dir).name}",
    )
    return digest


def check_seal(run_dir: Path | str) -> dict[str, Any]:
    """Compare the manifest's sha256 with the seals the Prefect server recorded for this run.

    Returns ``status`` ("ok", "mismatch" or "no record"), ``sha256`` of the manifest, ``recorded``
    (the seals, newest first: sha256, flow run id, created) and, when ok, ``matched`` (that seal).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    digest = file_fingerprint(Path(run_dir) / MANIFEST)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[seal_key(run_dir)])),
            sort=ArtifactSort.CREATED_DESC,
            limit=200,
        )
    recorded = []
    for artifact in artifacts:
        found = re.search(r"sha256: `([0-9a-f]{64})`", str(artifact.data or ""))
        if found:
            recorded.append(
                {
                    "sha256": found.group(1),
                    "flow_run_id": str(artifact.flow_run_id),
                    "created": str(artifact.created),
                }
            )
    matched = next((r for r in recorded if r["sha256"] == digest), None)
    status = "ok" if matched else ("mismatch" if recorded else "no record")
    return {"status": status, "sha256": digest, "recorded": recorded, "matched": matched}
