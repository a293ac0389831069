"""The house's layout, held against the code: the allowed direction of imports between the stage packages, no
cycle between modules or packages (imports inside functions and under TYPE_CHECKING count), heavy libraries only
on the training side, and every job-folder file named only by its owner (docs/layout.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "glue_bench"

# The direction of imports: a module may import its own package, the packages of a lower layer, and other
# packages of its own layer as long as no cycle forms between packages (tested below).
LAYERS = {
    "cli": 5, "executors": 5,  # the command line; executors/ is a shim for Slurm scripts written before the move
    "plan": 4, "run": 4, "report": 4, "cost": 4,  # the stages the commands drive
    "train": 3,  # below run (which starts its entry point) and cost (which builds models on the meta device)
    "results": 2,  # the job folder and its records
    "": 1,  # the vocabulary every stage shares: errors, process, tasks, spec, method_config, model_source, ...
}
HEAVY = ("torch", "transformers", "deepspeed", "peft")
# Besides the training side, only calibration's measurement runs a model.
HEAVY_ALLOWED = ("glue_bench.train", "glue_bench.cost.measure")
# Every file and folder of a job's results folder: only `glue_bench.results.job_folder` spells their names.
JOB_FOLDER_NAMES = {"spec.json", "metrics.json", "error.json", "train.log", "history.jsonl", "predictions",
                    "checkpoints", "claim", "wandb_run_id", "model", "adapter.safetensors", "peft", "predict"}
JOB_FOLDER_OWNER = "glue_bench.results.job_folder"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """The stage package of a module ("" for the top-level vocabulary modules)."""
    parts = module.split(".")
    is_package = (PACKAGE / Path(*parts[1:2])).is_dir() if len(parts) > 1 else False
    return parts[1] if len(parts) > 1 and is_package else ""


def imports_of(path: Path, modules: set[str]) -> tuple[set[str], set[str]]:
    """(glue_bench modules, outside top-level packages) that `path` imports anywhere: at the top, inside
    functions and under TYPE_CHECKING alike."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    inside, outside = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from glue_bench.x import y` names the module y when there is one, else an attribute of x
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for name in names:
            if not name.startswith("glue_bench"):
                outside.add(name.split(".")[0])
                continue
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != this:
                inside.add(name)
    return inside, outside


def module_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    graph, outside = {}, {}
    for path in paths:
        graph[module_name(path)], outside[module_name(path)] = imports_of(path, modules)
    return graph, outside


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {}
    for module, deps in graph.items():
        packages.setdefault(package_of(module), set()).update(
            package_of(dep) for dep in deps if package_of(dep) != package_of(module))
    return packages


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


GRAPH, OUTSIDE = module_graph()


def test_every_package_has_a_layer():
    assert {package_of(m) for m in GRAPH} <= set(LAYERS)


def test_the_graph_sees_imports_inside_functions_and_under_type_checking():
    assert "glue_bench.train.recipe" in GRAPH["glue_bench.run.launch"]  # inside `launch()`
    assert "glue_bench.spec" in GRAPH["glue_bench.results.job_folder"]  # under TYPE_CHECKING


def test_no_cycle_between_modules():
    cycle = find_cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle)


def test_no_cycle_between_packages():
    cycle = find_cycle(package_graph(GRAPH))
    assert cycle is None, " -> ".join(p or "(vocabulary)" for p in cycle)


def test_imports_run_down_the_layers():
    upward = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() for d in deps
                    if LAYERS[package_of(d)] > LAYERS[package_of(m)])
    assert not upward, "imports against the direction: " + "; ".join(upward)


def test_training_never_imports_the_cli_or_the_executors():
    bad = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if package_of(m) == "train" for d in deps
                 if package_of(d) in ("cli", "run", "executors"))
    assert not bad


def test_only_the_training_side_imports_heavy_libraries():
    bad = sorted(f"{m}: {', '.join(sorted(set(HEAVY) & libs))}" for m, libs in OUTSIDE.items()
                 if set(HEAVY) & libs and not m.startswith(HEAVY_ALLOWED))
    assert not bad


def job_folder_names_in(path: Path) -> list[str]:
    """Job-folder names spelled in `path`: `x / "name"` path joins with any of them, and string constants equal to
    a name that cannot mean anything else (`metrics.json`, `claim`, ...: not `model` or `predictions`)."""
    found, joined = [], set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant) \
                and node.right.value in JOB_FOLDER_NAMES:
            found.append(f"{path.name}:{node.lineno}: / {node.right.value!r}")
            joined.add(id(node.right))
        elif isinstance(node, ast.Constant) and id(node) not in joined and node.value in JOB_FOLDER_NAMES \
                and ("." in node.value or node.value in ("wandb_run_id", "claim")):
            found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    return sorted(set(found))


def test_job_folder_files_are_named_only_by_their_owner():
    found = [hit for p in sorted(PACKAGE.rglob("*.py")) if module_name(p) != JOB_FOLDER_OWNER
             for hit in job_folder_names_in(p)]
    assert not found, found


def test_the_job_folder_check_sees_a_hand_built_path(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('def f(out):\n    return out / "model", "error.json", "model"\n')
    assert job_folder_names_in(sample) == ["sample.py:2: 'error.json'", "sample.py:2: / 'model'"]


@pytest.mark.parametrize(("graph", "cycle"), [({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
                                               ({"a": {"b"}, "b": set()}, None)])
def test_find_cycle(graph, cycle):
    assert find_cycle(graph) == cycle


@pytest.mark.parametrize("entry", ["glue_bench.train", "glue_bench.executors.slurm_task", "glue_bench.run.slurm_task"])
def test_the_entry_points_running_jobs_and_written_slurm_scripts_call_still_start(entry):
    """`python -m glue_bench.train` (every rank) and `python -m glue_bench.executors.slurm_task` (Slurm scripts
    written before the move) keep working."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", entry, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage:"), proc.stderr[-2000:]


def test_every_method_family_has_one_module_and_every_module_a_family():
    from glue_bench.method_config import METHODS

    helpers = {"__init__", "common", "targets", "peft_path"}
    modules = {p.stem for p in (PACKAGE / "train" / "methods").glob("*.py")} - helpers
    assert modules == set(METHODS)


def test_exit_codes_are_named_not_spelled():
    """75 (resumable) and 130 (Ctrl-C) live in `glue_bench.process.ExitCode` only."""
    spelled = [f"{p.relative_to(PACKAGE)}:{n.lineno}" for p in sorted(PACKAGE.rglob("*.py")) if p.name != "process.py"
               for n in ast.walk(ast.parse(p.read_text()))
               if isinstance(n, ast.Constant) and type(n.value) is int and n.value in (75, 130)]
    assert not spelled
