"""Rerun the demo sweep and write what the README and docs/demo/ say about it.

    python scripts/demo.py [--data-dir ../shared/glue_data] [--slots 2]

Runs `glue-bench sweep jobs/demo.yaml --slots N` in a fresh folder (fresh token cache, offline), times it, copies
the report files to docs/demo/ and rewrites the README between its `demo:` markers: the run time in the set-up
line and the demo's table (the task columns the demo has). Nothing in the README's demo numbers is typed by hand.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FILES = ("report.md", "report.json", "score_vs_parameters.png", "score_vs_size.png")


def run_demo(data_dir: Path, slots: int, work: Path) -> float:
    env = {**os.environ, "GLUE_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
           "GLUE_BENCH_CACHE": str(work / "cache")}
    exe = Path(sys.executable).with_name("glue-bench")
    start = time.perf_counter()
    subprocess.run([str(exe), "sweep", str(ROOT / "jobs" / "demo.yaml"), "--slots", str(slots)], cwd=work, env=env,
                   check=True)
    return time.perf_counter() - start


def demo_table(report_md: str) -> str:
    """The report's first table (the GLUE table) without the task columns the demo has no results for."""
    lines = []
    for line in report_md.splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    header, body = rows[0], rows[2:]
    always = ("method", "trainable params", "% of base", "Δ vs full")
    keep = [i for i, name in enumerate(header) if name in always or any(r[i] != "-" for r in body)]
    out = ["| " + " | ".join(header[i] for i in keep) + " |", "|" + "---|" * len(keep)]
    out += ["| " + " | ".join(r[i] for i in keep) + " |" for r in body]
    return "\n".join(out)


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def rewrite_readme(seconds: float, table: str) -> None:
    text = README.read_text()
    text = re.sub(r"<!-- demo:time -->.*?<!-- /demo:time -->",
                  f"<!-- demo:time -->{minutes(seconds)}<!-- /demo:time -->", text, flags=re.S)
    text = re.sub(r"<!-- demo:table -->.*?<!-- /demo:table -->", f"<!-- demo:table -->\n{table}\n<!-- /demo:table -->",
                  text, flags=re.S)
    tmp = README.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, README)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python scripts/demo.py", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "glue_data")
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="glue-bench-demo-") as tmp:
        work = Path(tmp)
        seconds = run_demo(args.data_dir.resolve(), args.slots, work)
        report = work / "results" / "demo" / "report"
        for name in FILES:
            if (report / name).is_file():
                shutil.copy2(report / name, ROOT / "docs" / "demo" / name)
        rewrite_readme(seconds, demo_table((report / "report.md").read_text()))
    print(f"demo sweep: {minutes(seconds)}; README and docs/demo/ updated")


if __name__ == "__main__":
    main()
