"""Fixtures, and the two ways a test runs glue-bench: `glue_bench` (the console script, in a subprocess) and
`invoke` (in this process). Test files import these with `from conftest import ...`, and the helper modules
beside them by name (this folder is on sys.path): `tiny` (tiny encoders, the method tests' specs), `job_folders`
(job folders written by hand), `report_records` (report records made by hand), `train_runs` (training through
the CLI), `slurm_sweeps` (the Slurm tests' sweep), `wandb_reader` (offline wandb runs read back) and `fake_job`
(a stand-in job process). A test file never imports another test file."""

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# No network in tests: the hub client fails at once instead of retrying for ~23 s.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "disabled"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.pop("GLUE_DATA_DIR", None)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
REAL_GLUE = Path(os.environ.get("GLUE_BENCH_REAL_DATA", ROOT.parent / "shared" / "glue_data"))
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def real_glue() -> Path:
    assert REAL_GLUE.is_dir(), f"the real GLUE files are expected at {REAL_GLUE}"
    return REAL_GLUE


@pytest.fixture(scope="session")
def fixture_glue() -> Path:
    return FIXTURES / "glue_data"


@pytest.fixture(scope="session", autouse=True)
def token_cache(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("token-cache")
    os.environ["GLUE_BENCH_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    from tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-bert"), "bert")


def glue_bench(*args: str, cwd: Path | None = None, check: bool = True, timeout: int = 600,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `glue-bench` console script in a subprocess."""
    exe = Path(sys.executable).with_name("glue-bench")
    proc = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"glue-bench {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def invoke(*args: str):
    """Run a `glue-bench` command in this process (Typer's CliRunner), 200 columns wide."""
    from typer.testing import CliRunner

    from glue_bench.cli import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


@contextlib.contextmanager
def throwaway_slurm(folder: Path, *args: str, cancel_all: bool = False):
    """A cluster from scripts/slurm_up.sh FOLDER ARGS with SLURM_CONF pointing at it; stopped afterwards by
    slurm_down.sh (job steps included), whatever the tests left. Skips where it cannot run (not root, no Slurm
    and no apt-get to install it)."""
    if os.geteuid() != 0:
        pytest.skip("the Slurm tests start throw-away clusters and need root (CI runs them)")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.skip("no Slurm and no apt-get to install it")
    up = subprocess.run(["bash", str(ROOT / "scripts" / "slurm_up.sh"), str(folder), *args], capture_output=True,
                        text=True, timeout=600)
    down = ["bash", str(ROOT / "scripts" / "slurm_down.sh"), str(folder)]
    if up.returncode != 0:
        subprocess.run(down, timeout=60)
        pytest.fail(f"slurm_up.sh {' '.join(args)} failed:\n{up.stderr[-2000:]}")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
    try:
        yield folder
    finally:
        if cancel_all:
            subprocess.run(["scancel", "--user", "root"], timeout=60)
        subprocess.run(down, timeout=60)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """One throw-away single-node cluster for every test module that submits to Slurm."""
    with throwaway_slurm(tmp_path_factory.mktemp("slurm"), cancel_all=True) as folder:
        yield folder
