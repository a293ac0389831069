"""Where a planned sweep stands, read from its results folder (no torch): done, running, failed, pending."""

from __future__ import annotations

import time
from pathlib import Path

from glue_bench.errors import GlueBenchError
from glue_bench.plan.manifest import load_manifest
from glue_bench.results import claims

FINISHED_SAMPLE = 64
"""Done jobs whose measured duration corrects the ETA (the latest ones; reading all would slow status down)."""


def sweep_status(jobs_dir: Path, verify: bool = False) -> dict[str, list[dict]]:
    """Counts and details of a sweep's jobs. "Done" is the stat check; `verify` also re-reads every
    prediction file (rows and sha256), which costs a pass over all of them. A pending job that finished once but
    whose files are no longer whole says why (`problem`, naming the file): it runs again."""
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
            status["pending"].append({"id": entry.id, "resumable": job.is_resumable(), "problem": job.problem(verify)})
    return status


def eta_line(jobs_dir: Path, status: dict[str, list[dict]]) -> str | None:
    """`status`'s ETA: the estimate of the jobs left (glue_bench.cost.eta, no torch) on as many slots as jobs run
    now, corrected by the running jobs' reported throughput; None when the jobs have no estimate."""
    from glue_bench.cost.calibration import Target
    from glue_bench.cost.eta import job_estimates, latest_training_record, progress_eta, share_done, sweep_eta
    from glue_bench.plan.manifest import load_job
    from glue_bench.run.slots import gpu_name

    manifest = load_manifest(jobs_dir)
    left = [j["id"] for j in status["running"] + status["pending"]]
    if not left:
        return None
    specs = {}
    for job_id in left:  # the ETA is a nicety: a spec that cannot be read leaves its job out, never fails status
        try:
            specs[job_id] = load_job(jobs_dir, job_id)
        except GlueBenchError:
            continue
    cpu = manifest.gpus_per_job == 0 or (manifest.gpus_per_job == "auto" and gpu_name() is None)
    slots = max(1, len(status["running"]))
    target = Target.cpu(slots) if cpu else Target.cuda(gpu_name() or "")
    done = [j["id"] for j in status["done"]][-FINISHED_SAMPLE:]
    finished = {j: s for j in done if (s := (manifest.job_dir(j).metrics() or {}).get("wall_seconds"))}
    progress = {j["id"]: latest_training_record(manifest.job_dir(j["id"])) for j in status["running"]}
    priced = list(specs.values())
    for job_id in finished:  # the finished jobs' estimates against their measured durations: the correction
        try:
            priced.append(load_job(jobs_dir, job_id))
        except GlueBenchError:
            continue
    estimates = job_estimates(priced, target) if priced else {}
    eta = sweep_eta(estimates, progress, [j["id"] for j in status["pending"]], slots, finished)
    if eta is not None:
        seconds, correction = eta
        return (f"ETA {seconds / 3600:.2f} h on {slots} slot(s) for {len(left)} job(s) left "
                f"(estimate on {target.name or 'a GPU'}, x{correction:.2f} from the jobs' measured times)")
    now = time.time()
    running = {}
    for j in status["running"]:  # no estimate: from how far the running jobs got since they were claimed
        claim = claims.read_claim(manifest.job_dir(j["id"]).path) or {}
        epochs = specs[j["id"]].epochs if j["id"] in specs else 0
        running[j["id"]] = (now - float(claim.get("start", now)), share_done(progress[j["id"]], epochs))
    seconds = progress_eta(running, list(finished.values()), len(status["pending"]), slots)
    if seconds is None:
        return None
    return (f"ETA {seconds / 3600:.2f} h on {slots} slot(s) for {len(left)} job(s) left (from the jobs' progress "
            "so far; `glue-bench plan SWEEP --dry-run --estimate` prices each job)")
