"""Where a planned sweep stands, read from its results folder (no torch): done, running, failed, pending."""

from __future__ import annotations

from pathlib import Path

from glue_bench.executors import claims
from glue_bench.plan import load_manifest


def sweep_status(jobs_dir: Path, verify: bool = False) -> dict[str, list[dict]]:
    """Counts and details of a sweep's jobs. "Done" is the stat check; `verify` also re-reads every
    prediction file (rows and sha256), which costs a pass over all of them."""
    manifest = load_manifest(jobs_dir)
    status: dict[str, list[dict]] = {"done": [], "running": [], "failed": [], "pending": []}
    for entry in manifest.jobs:
        job = manifest.job_dir(entry.id)
        if job.is_done(verify=verify):
            status["done"].append({"id": entry.id})
        elif (where := claims.claim_summary(job.path)) is not None:
            progress = job.progress()
            status["running"].append({"id": entry.id, "where": where, "step": progress.get("step"),
                                      "epoch": progress.get("epoch")})
        elif (error := job.error()) is not None:
            status["failed"].append({"id": entry.id, "error": job.error_summary(), "attempt": error.get("attempt")})
        else:
            status["pending"].append({"id": entry.id, "resumable": job.is_resumable()})
    return status
