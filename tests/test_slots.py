"""Where local jobs run (glue_bench/run/slots.py): GPU and CPU slots, shared GPUs, a job's command and
environment."""

import os
from pathlib import Path

import pytest

from glue_bench.errors import GlueBenchError
from glue_bench.run import local


def test_gpu_slots_pack_jobs_and_pin_them():
    from glue_bench.run.local import Slot, job_command, job_environment, make_slots

    slots = make_slots([0, 1, 3], gpus_per_job=1, cpu_slots=None, procs_per_job=1)
    assert [(s.name, s.gpus) for s in slots] == [("gpu0", (0,)), ("gpu1", (1,)), ("gpu3", (3,))]
    pairs = make_slots([0, 1, 2, 3, 4], gpus_per_job=2, cpu_slots=None, procs_per_job=1)
    assert [s.gpus for s in pairs] == [(0, 1), (2, 3)]  # GPU 4 alone cannot hold a 2-GPU job
    with pytest.raises(GlueBenchError, match="jobs need 2 GPU"):
        make_slots([0], gpus_per_job=2, cpu_slots=None, procs_per_job=1)
    env = job_environment(Slot("gpu2,3", gpus=(2, 3)), {"token": "t"}, 30)
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3" and env["GLUE_BENCH_CLAIM_TOKEN"] == "t"
    first, second = job_command(Path("s.json"), Path("out"), 2), job_command(Path("s.json"), Path("out"), 2)
    assert first[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node" in first
    port = first.index("--master-port") + 1
    assert first[port] != second[port]  # distinct master ports for concurrent jobs
    cpu = make_slots(None, gpus_per_job=0, cpu_slots=2, procs_per_job=1)
    assert [s.threads for s in cpu] == [max(1, (os.cpu_count() or 1) // 2)] * 2


def test_slots_share_each_gpu_round_robin():
    slots = local.make_slots([0, 1], gpus_per_job=1, cpu_slots=None, procs_per_job=1, jobs_per_gpu=2)
    assert [(s.name, s.gpus, s.shared) for s in slots] == [
        ("gpu0/0", (0,), True), ("gpu1/0", (1,), True), ("gpu0/1", (0,), True), ("gpu1/1", (1,), True)]
    assert [s.name for s in local.make_slots([0, 1], 1, None, 1)] == ["gpu0", "gpu1"]  # one per GPU: as before
    env = local.job_environment(slots[2], {"token": "t"}, 30, port=29123, world=1)
    assert (env["CUDA_VISIBLE_DEVICES"], env["MASTER_PORT"], env["RANK"], env["WORLD_SIZE"]) == ("0", "29123", "0",
                                                                                                  "1")
