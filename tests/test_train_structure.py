"""The shape of the training side: no import cycles, small modules, no unused C++ build, WANDB_DIR honoured."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "glue_bench"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """glue_bench modules that `path` imports anywhere (also inside functions), less TYPE_CHECKING blocks."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and is_type_checking(node)
               for child in node.body for n in ast.walk(child)}
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from glue_bench import x` names a module x when there is one, else an attribute of the package
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `import glue_bench.executors.local` -> that module
                name = name.rpartition(".")[0]
            if name and name != this:
                out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_import_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "glue_bench.train" in graph["glue_bench.launch"]  # launch imports train inside `launch()`
    assert "glue_bench.stop" in graph["glue_bench.train"]


def test_no_import_cycles():
    graph = import_graph()
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert "glue_bench.launch" not in graph["glue_bench.train"]
    assert "glue_bench.executors.local" not in graph["glue_bench.train"]
    assert "glue_bench.train" not in graph["glue_bench.predict"]


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_modules_are_at_most_400_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


SHM_PROBE = textwrap.dedent("""
    import json, os, sys
    from deepspeed.ops.op_builder.builder import OpBuilder

    built = []
    original = OpBuilder.load

    def load(self, *args, **kwargs):
        built.append(self.NAME)
        return original(self, *args, **kwargs)

    OpBuilder.load = load
    from glue_bench.runtime import Run
    from glue_bench.spec import JobSpec

    run = Run(JobSpec(task="rte", model="unused", num_gpus=0))
    print(json.dumps({"built": built, "world": run.world}))
""")


def test_run_does_not_build_deepspeed_shm_allreduce(tmp_path):
    """`deepspeed.init_distributed` would JIT-compile the shared-memory all-reduce op (minutes on 2 cores)."""
    extensions = tmp_path / "torch_extensions"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["TORCH_EXTENSIONS_DIR"] = str(extensions)
    proc = subprocess.run([sys.executable, "-c", SHM_PROBE], capture_output=True, text=True, timeout=300, env=env,
                          cwd=PACKAGE.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"built": [], "world": 1}
    assert not list(extensions.rglob("deepspeed_shm_comm*"))


def test_wandb_dir_is_honoured(tmp_path, monkeypatch):
    from glue_bench import tracking

    wandb_dir, results = tmp_path / "x", tmp_path / "results"
    wandb_dir.mkdir()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    tracker = tracking.start("offline", project="p", entity=None, group=None, job_type="rte", name="n", tags=[],
                             config={}, directory=results)
    try:
        assert isinstance(tracker, tracking.WandbTracker)
    finally:
        tracker.finish()
    assert len(list((wandb_dir / "wandb").glob("offline-run-*"))) == 1
    assert not list(results.rglob("offline-run-*"))


def test_results_folder_is_the_default_wandb_dir(tmp_path, monkeypatch):
    from glue_bench import tracking

    monkeypatch.delenv("WANDB_DIR", raising=False)
    assert tracking.wandb_directory(tmp_path) == tmp_path
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "x"))
    assert tracking.wandb_directory(tmp_path) == tmp_path / "x"
