"""The claim mechanism alone: concurrent claimers, killed claimers, leases."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from glue_bench.results import claims

CLAIMER = r"""
import json, os, sys, time
from pathlib import Path
from glue_bench.results import claims
from glue_bench.results.job_folder import atomic_write_json

root, log = Path(sys.argv[1]), Path(sys.argv[2])
jobs = sorted(root.iterdir())
while True:
    left = [j for j in jobs if not (j / "metrics.json").exists()]
    if not left:
        break
    for job in left:
        claim = claims.try_claim(job, lease_s=30)
        if claim is None:
            continue
        with log.open("a") as f:
            f.write(json.dumps({"job": job.name, "pid": os.getpid(), "event": "claimed"}) + "\n")
        time.sleep(0.02)  # the work
        (job / "predictions").mkdir(exist_ok=True)
        (job / "predictions" / "dev.tsv").write_text("idx\tprediction\tlabel\n0\t1\t1\n")
        atomic_write_json(job / "metrics.json", {"schema_version": 1, "job_id": job.name, "task": "rte",
            "method": "full", "dev": {}, "task_score": 0.0, "predictions": {"dev": 1},
            "spec": {"predict_test": False}})
        with log.open("a") as f:
            f.write(json.dumps({"job": job.name, "pid": os.getpid(), "event": "done"}) + "\n")
        claims.release(job, claim["token"])
    time.sleep(0.01)
"""


def test_eight_claimers_on_fifty_jobs_some_killed(tmp_path):
    root = tmp_path / "results"
    for i in range(50):
        (root / f"job{i:02d}").mkdir(parents=True)
    logs = [tmp_path / f"claimer{i}.jsonl" for i in range(8)]
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(root), str(log)]) for log in logs]
    time.sleep(0.6)
    killed = procs[:3]
    for p in killed:
        p.send_signal(signal.SIGKILL)
    for p in procs[3:]:
        assert p.wait(timeout=120) == 0
    records = [json.loads(line) for log in logs if log.exists() for line in log.read_text().splitlines()]
    done = [r["job"] for r in records if r["event"] == "done"]
    assert sorted(done) == sorted(f"job{i:02d}" for i in range(50))  # every job finished exactly once
    killed_pids = {p.pid for p in killed}
    for job in {r["job"] for r in records}:
        owners = [r["pid"] for r in records if r["job"] == job and r["event"] == "claimed"]
        # a job has one owner; a second claim is only allowed after its first owner was killed
        assert len(owners) == 1 or (len(owners) == 2 and owners[0] in killed_pids), (job, owners)
    assert all(not (root / j / "claim").exists() or not claims.claim_alive(claims.read_claim(root / j))
               for j in os.listdir(root))


def test_live_claims_block_and_expired_ones_free_the_job(tmp_path, monkeypatch):
    clock = SimpleNamespace(now=1000.0)  # the claims' clock, moved by hand: a lease lapses only when told to
    monkeypatch.setattr(claims, "time", SimpleNamespace(time=lambda: clock.now))
    job = tmp_path / "job"
    first = claims.try_claim(job, lease_s=0.3)
    assert first is not None
    assert claims.try_claim(job, lease_s=0.3) is None  # held by a live process (us) with a valid lease
    assert claims.renew(job, first["token"], lease_s=0.3)
    clock.now += 0.4
    second = claims.try_claim(job, lease_s=5)  # lease expired
    assert second is not None and second["token"] != first["token"]
    assert not claims.renew(job, first["token"])  # the old holder learns it lost the job
    claims.release(job, first["token"])  # releasing someone else's claim does nothing
    assert claims.read_claim(job)["token"] == second["token"]
    claims.release(job, second["token"])
    assert claims.read_claim(job) is None


def test_a_dead_holder_on_this_host_frees_the_job_at_once(tmp_path):
    job = tmp_path / "job"
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    assert claims.try_claim(job, lease_s=600, runner_pid=dead_pid) is not None
    assert claims.try_claim(job, lease_s=600) is not None


def test_lease_keeper_renews_from_the_job_process(tmp_path):
    job = tmp_path / "job"
    claim = claims.try_claim(job, lease_s=0.6)
    keeper = claims.LeaseKeeper(Path(job), claim["token"], 0.6).start()
    try:
        started = claims.read_claim(job)  # start() renews at once, naming the job process
        assert started["job_pid"] == os.getpid()
        # then the keeper's thread renews on its own: each renewal moves the expiry on. Waited for, not slept
        # for, so that a slow thread is late but never wrong.
        renewals = [started["expires"]]
        deadline = time.monotonic() + 60
        while len(renewals) < 3:
            assert time.monotonic() < deadline, f"the lease was renewed {len(renewals) - 1} time(s) in 60 s"
            expires = claims.read_claim(job)["expires"]
            if expires != renewals[-1]:
                renewals.append(expires)
            time.sleep(0.01)
        assert renewals[-1] > claim["expires"]  # kept alive past the lease it was claimed with
        assert claims.read_claim(job)["job_pid"] == os.getpid()
        assert claims.read_claim(job)["token"] == claim["token"]
    finally:
        keeper.stop()
