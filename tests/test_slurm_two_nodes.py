"""Slurm on a two-node cluster (scripts/slurm_up.sh --nodes 2): two slurmd, each a host of its own (network, UTS
and mount namespaces: its own hostname, address and /etc/hosts) over one shared file system. Arrays spread
over both hosts, a two-node job, two runners on different hosts, and a node lost mid-job."""

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, glue_bench, throwaway_slurm
from slurm_sweeps import results, write_sweep

GLUE_BENCH = str(Path(sys.executable).with_name("glue-bench"))
NODES = ("node1", "node2")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with throwaway_slurm(tmp_path_factory.mktemp("cluster"), "--nodes", "2") as folder:
        yield folder


def on_node(cluster: Path, node: str, *cmd: str, cwd: Path = Path("/")) -> list[str]:
    """`cmd` as run on `node` in `cwd`: in its network, UTS and mount namespaces."""
    pid = (cluster / f"{node}.pid").read_text().strip()
    # cd inside: nsenter's --wd keeps a directory of this mount namespace, and renames from there into a
    # path of the node's namespace fail as cross-device
    return ["nsenter", "--target", pid, "--net", "--uts", "--mount", "--", "sh", "-c", 'cd "$0" && exec "$@"',
            str(cwd), *cmd]


def node_processes(cluster: Path, node: str) -> list[str]:
    """Command lines of every process on `node` (in its network namespace)."""
    ns = f"{(cluster / 'netns.tag').read_text().strip()}-{node}"
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    out = []
    for pid in pids:
        try:
            out.append(Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip())
        except OSError:
            pass
    return out


def lock_table() -> str:
    return Path("/proc/locks").read_text()


def lock_waiters(path: Path) -> set[int]:
    """Pids of the processes blocked waiting for a flock on `path`: the `->` lines of /proc/locks
    (`1: -> FLOCK  ADVISORY  WRITE <pid> <major>:<minor>:<inode> 0 EOF`)."""
    st = path.stat()
    file_id = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    waiters = set()
    for line in lock_table().splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[1:3] == ["->", "FLOCK"] and fields[6] == file_id:
            waiters.add(int(fields[5]))
    return waiters


def history(root: Path, job: str) -> list[dict]:
    lines = (root / "results" / "tiny" / job / "history.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


def starts(root: Path, job: str) -> list[dict]:
    return [r for r in history(root, job) if r.get("event") in ("start", "resume")]


def all_submissions(root: Path) -> list[dict]:
    return json.loads((root / "jobs" / "tiny" / "slurm" / "submissions.json").read_text())


def slurm_log(root: Path) -> str:
    return "".join(p.read_text() for p in sorted((root / "jobs" / "tiny" / "slurm" / "logs").glob("*.out")))


def tiny_sweep(root: Path, tiny_bert: Path, real_glue: Path, **changes) -> Path:
    small = {"epochs": 1, "max_train_samples": 64, "max_eval_samples": 16, "max_seq_length": 32, **changes}
    write_sweep(root, tiny_bert, real_glue, **small)
    glue_bench("plan", "tiny.yaml", cwd=root)
    return root


def one_host_reference(root: Path, folder: Path, num_procs: int = 1) -> subprocess.Popen:
    """The sweep's job specs run one after another on this one machine, in the background (one rank: all in
    one process, as `glue-bench train` runs them; more: `glue-bench train` each, under torchrun)."""
    specs = []
    for spec_file in sorted((root / "jobs" / "tiny").glob("*.json")):
        if spec_file.name == "manifest.json":
            continue
        spec = json.loads(spec_file.read_text())
        spec["num_procs"] = num_procs
        (folder / spec_file.stem).mkdir(parents=True)
        specs.append(folder / spec_file.stem / "job.json")
        specs[-1].write_text(json.dumps(spec))
    if num_procs == 1:
        code = ("import json, sys; from pathlib import Path; from glue_bench.spec import JobSpec; "
                "from glue_bench.train.recipe import main\n"
                "for f in sys.argv[1:]: main(JobSpec.from_dict(json.loads(Path(f).read_text())), Path(f).parent)")
        cmd = [sys.executable, "-c", code, *map(str, specs)]
    else:
        cmd = ["bash", "-c", " && ".join(f"{GLUE_BENCH} train --spec {f} --output-dir {f.parent}" for f in specs)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def reference_results(folder: Path) -> dict[str, dict]:
    return {p.name: json.loads((p / "metrics.json").read_text()) for p in folder.iterdir()}


def assert_equal_metrics(final: dict, reference: dict) -> None:
    assert set(final) == set(reference)
    for job, metrics in final.items():
        assert metrics["dev"]["dev"] == pytest.approx(reference[job]["dev"]["dev"], abs=1e-4), job
        assert metrics["global_steps"] == reference[job]["global_steps"], job
        # the sum of the trained parameters: a far finer check than a metric on a few dev rows
        final_sum, reference_sum = (m["distributed"]["param_sums_per_rank"][0] for m in (metrics, reference[job]))
        assert final_sum == pytest.approx(reference_sum, rel=1e-6), job


def test_two_runners_on_two_hosts_run_an_array_over_both_once(cluster, tmp_path, tiny_bert, real_glue):
    # `glue-bench run --executor slurm` started on node1 and on node2 at once, for one 6-job sweep
    root = tiny_sweep(tmp_path / "cluster", tiny_bert, real_glue, tasks=["rte", "mrpc", "cola"])
    reference = one_host_reference(root, tmp_path / "one-host")
    lock = root / "jobs" / "tiny" / "slurm" / ".submit.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "a") as held:
        # while another submission holds the lock, a runner waits before it reads what Slurm has queued
        fcntl.flock(held, fcntl.LOCK_EX)
        run = [GLUE_BENCH, "run", "jobs/tiny", "--executor", "slurm", "--cpus-per-task", "1"]
        runners = [subprocess.Popen(on_node(cluster, node, *run, cwd=root), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for node in NODES]
        start = time.time()
        while lock_waiters(lock) != {r.pid for r in runners}:  # both runners blocked in flock on the lock
            assert all(r.poll() is None for r in runners), \
                [r.stderr.read()[-3000:] for r in runners if r.poll() is not None]
            assert time.time() - start < 120, f"the runners never waited for the lock:\n{lock_table()}"
            time.sleep(0.1)
        # a runner records its array only under the lock, which this test holds: nothing can be recorded yet
        assert not (root / "jobs" / "tiny" / "slurm" / "submissions.json").exists()
    outputs = [r.communicate(timeout=600) for r in runners]
    assert [r.returncode for r in runners] == [0, 0], [o[1][-3000:] for o in outputs]
    for node in NODES:  # the runners ran on two hosts
        assert subprocess.run(on_node(cluster, node, "hostname"), capture_output=True, text=True).stdout.strip() == node
    final = results(root)
    assert len(final) == 6
    subs = all_submissions(root)
    assert sorted(j for s in subs for j in s["jobs"]) == sorted(final)  # each job submitted once
    assert sorted(s["array_file"] for s in subs) == [f"array-{i}.json" for i in range(len(subs))]
    hosts = {job: [r["ranks"][0]["host"] for r in starts(root, job)] for job in final}
    assert all(len(h) == 1 for h in hosts.values()), hosts  # each job started once
    assert {h[0] for h in hosts.values()} == set(NODES), hosts  # and both hosts ran jobs
    assert {m["provenance"]["host"] for m in final.values()} == set(NODES)
    assert "claimed by another runner" not in slurm_log(root)
    assert reference.wait(timeout=600) == 0, reference.stdout.read()[-3000:]
    assert_equal_metrics(final, reference_results(tmp_path / "one-host"))


def test_a_two_node_job_and_two_at_once_on_the_same_first_node(cluster, tmp_path, tiny_bert, real_glue):
    # two 2-node array tasks run at the same time, both with node1 as their first node: each needs its own
    # rendezvous port there
    sweep = {"tasks": ["rte"], "epochs": 2}
    root = tiny_sweep(tmp_path / "cluster", tiny_bert, real_glue, **sweep)
    reference = one_host_reference(root, tmp_path / "one-host", num_procs=2)  # two ranks on one host
    glue_bench("run", "jobs/tiny", "--executor", "slurm", "--nodes", "2", "--procs-per-job", "1",
               "--cpus-per-task", "1", cwd=root, timeout=600)
    assert reference.wait(timeout=600) == 0, reference.stdout.read()
    final = results(root)
    assert len(final) == 2
    for job, metrics in final.items():
        assert metrics["distributed"]["world_size"] == 2
        sums = metrics["distributed"]["param_sums_per_rank"]
        assert sums[0] == sums[1], job  # parameters equal on both ranks at the end
        (start,) = starts(root, job)
        assert [r["host"] for r in start["ranks"]] == ["node1", "node2"], start  # one rank per host
    log = slurm_log(root)
    endpoints = sorted(line.split("--rdzv-endpoint=")[1].split()[0] for line in log.splitlines()
                       if "--rdzv-endpoint=" in line)
    assert len(endpoints) == 2 and all(e.startswith("node1:") for e in endpoints), endpoints
    assert endpoints[0] != endpoints[1], endpoints
    assert log.count("srun --nodes=2 --ntasks=2 --ntasks-per-node=1") == 2
    tasks = [line for line in log.splitlines() if " on node" in line and "(pid " in line]
    assert all(" on node1 (pid " in line for line in tasks), tasks  # the batch step runs on the first node
    assert_equal_metrics(final, reference_results(tmp_path / "one-host"))


def test_status_shows_the_host_of_each_job_and_cancel_stops_both(cluster, tmp_path, tiny_bert, real_glue):
    root = tiny_sweep(tmp_path, tiny_bert, real_glue, tasks=["rte"], epochs=200)
    # two CPUs per job and two per node: one job on each host
    glue_bench("run", "jobs/tiny", "--executor", "slurm", "--cpus-per-task", "2", "--no-wait", cwd=root)
    jobs = all_submissions(root)[0]["jobs"]
    start = time.time()
    while True:
        running = [line for line in glue_bench("status", "jobs/tiny", cwd=root).stdout.splitlines()
                   if line.startswith("running ")]
        if len(running) == 2:
            break
        assert time.time() - start < 120, "the two jobs did not both start"
        time.sleep(1)
    squeue = subprocess.run(["squeue", "-h", "-o", "%i %N"], capture_output=True, text=True).stdout.split("\n")
    nodes = dict(line.split() for line in squeue if line.strip())
    array = all_submissions(root)[0]["array_job_id"]
    for index, job in enumerate(jobs):
        (line,) = [x for x in running if x.startswith(f"running {job} on ")]
        assert line.startswith(f"running {job} on {nodes[f'{array}_{index}']} pid "), (line, nodes)
    assert {nodes[f"{array}_{i}"] for i in range(2)} == set(NODES)
    assert all(any("glue_bench.train" in p for p in node_processes(cluster, n)) for n in NODES)
    glue_bench("cancel", "jobs/tiny", cwd=root)
    start = time.time()
    while any("glue_bench" in p for n in NODES for p in node_processes(cluster, n)):
        assert time.time() - start < 60, "cancelled jobs are still running"
        time.sleep(0.5)
    while subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip():
        assert time.time() - start < 90, "cancelled jobs are still in Slurm"
        time.sleep(0.5)


def test_a_node_lost_mid_job_comes_back_on_the_other_and_resumes(cluster, tmp_path, tiny_bert, real_glue):
    # last in this module: the lost node stays down
    root = tiny_sweep(tmp_path / "cluster", tiny_bert, real_glue, tasks=["rte"],
                      methods={"full": {"learning_rate": 1e-4}}, epochs=4, max_train_samples=128)
    glue_bench("run", "jobs/tiny", "--executor", "slurm", "--no-wait", cwd=root)
    (job,) = all_submissions(root)[0]["jobs"]
    folder = root / "results" / "tiny" / job
    start = time.time()
    while not list((folder / "checkpoints").glob("last-*")):
        assert time.time() - start < 180, "no checkpoint appeared"
        time.sleep(0.2)
    lost = json.loads((folder / "claim").read_text())["host"]
    assert lost in NODES
    subprocess.run(["bash", str(ROOT / "scripts" / "slurm_down.sh"), str(cluster), "--kill-node", lost], check=True)
    killed_at = time.time()
    assert node_processes(cluster, lost) == []  # its slurmd and the job's processes are gone
    # a clean run of the same spec, meanwhile, for the comparison
    spec = tmp_path / "spec.json"
    spec.write_text((root / "jobs" / "tiny" / f"{job}.json").read_text())
    clean = subprocess.Popen([GLUE_BENCH, "train", "--spec", str(spec), "--output-dir", str(tmp_path / "clean")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    proc = glue_bench("run", "jobs/tiny", "--executor", "slurm", cwd=root, timeout=600)
    assert "already queued in Slurm: not submitted" in proc.stdout  # Slurm requeued it on the node failure
    assert clean.wait(timeout=600) == 0
    (metrics,) = results(root).values()
    survivor = next(n for n in NODES if n != lost)
    runs = starts(root, job)
    assert [(r["event"], r["ranks"][0]["host"]) for r in runs] == [("start", lost), ("resume", survivor)], runs
    assert runs[1]["time"] > killed_at  # resumed after the loss, from a checkpoint before the end
    assert 0 < runs[1]["step"] < metrics["global_steps"]
    assert metrics["provenance"]["host"] == survivor
    assert not (folder / "claim").exists()  # taken back by the requeued task, released at the end
    reference = json.loads((tmp_path / "clean" / "metrics.json").read_text())
    assert metrics["dev"]["dev"] == pytest.approx(reference["dev"]["dev"], abs=1e-4)
    assert metrics["global_steps"] == reference["global_steps"]


def test_slurm_down_stops_everything_with_a_job_step_running(cluster):
    # last: takes the cluster down (the fixture's own slurm_down.sh then finds nothing left)
    survivor = next(n for n in NODES if node_processes(cluster, n))
    job = subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "srun sleep 300"], check=True,
                         capture_output=True, text=True).stdout.strip()
    start = time.time()
    while not any(p.endswith("bin/sleep 300") for p in node_processes(cluster, survivor)):  # the step itself
        assert time.time() - start < 60, f"job {job} never started its step"
        time.sleep(0.5)
    tag = (cluster / "netns.tag").read_text().strip()
    started = [pid for ns in (cluster / "netns.list").read_text().split()  # slurmctld, slurmd, slurmstepd, srun
               for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()]
    assert len(started) >= 8
    start = time.time()
    subprocess.run(["bash", str(ROOT / "scripts" / "slurm_down.sh"), str(cluster)], check=True, timeout=60)
    took = time.time() - start
    alive = [pid for pid in started if Path(f"/proc/{pid}").exists()]
    assert alive == [] and took < 15, (alive, took)
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert tag not in netns
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert f"{tag}br" not in links
