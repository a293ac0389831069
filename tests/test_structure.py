"""The package's shape: no import cycles, small modules, no unused C++ build, the user's WANDB_DIR."""

import ast
import os
import subprocess
import sys
from pathlib import Path

from wandb_reader import read_run

PACKAGE = Path(__file__).resolve().parents[1] / "glue_bench"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """glue_bench modules `path` imports anywhere (functions included), except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for child in node.body for n in ast.walk(child)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("glue_bench"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
    return found - {module_name(path)}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "glue_bench.train" in graph["glue_bench.launch"]  # the walk sees imports inside functions
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_module_is_over_400_lines():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_deepspeed_does_not_build_its_shm_allreduce_op(tmp_path):
    # DeepSpeed's TorchBackend builds the op through its op builder's `load`; count the calls in a fresh process
    code = """
import os
import deepspeed.ops.op_builder as builders
from glue_bench.runtime import Run
from glue_bench.spec import JobSpec
calls = []
for name in dir(builders):
    cls = getattr(builders, name)
    if isinstance(cls, type) and hasattr(cls, "load"):
        original = cls.load
        def load(self, *a, _original=original, **k):
            calls.append(type(self).__name__)
            return _original(self, *a, **k)
        cls.load = load
Run(JobSpec(task="rte", model="m"))
print("BUILT", calls)
"""
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext")}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "BUILT []" in proc.stdout, proc.stdout
    assert not list((tmp_path / "ext").glob("*shm*"))


def test_wandb_dir_is_honoured(tmp_path, monkeypatch):
    from glue_bench import tracking

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "scratch"))
    results = tmp_path / "results" / "job"
    tracker = tracking.start("offline", project="p", entity=None, group="g", job_type="rte", name="job", tags=[],
                             config={"a": 1}, directory=results)
    assert tracker.run_id is not None
    tracker.log({"train/loss": 1.0}, step=1)
    tracker.finish()
    (run_dir,) = (tmp_path / "scratch" / "wandb").glob("offline-run-*")
    assert read_run(run_dir)["config"]["a"] == 1
    assert not (results / "wandb").exists()
