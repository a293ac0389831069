"""The pruning study: a real-model sweep run in full, ASHA replayed on it, and the same sweep run again pruned.

    python -m benchmarks pruning [--work DIR] [--slots 2] [--out benchmarks/results-pruning.json]

Runs `jobs/pruning-study.yaml` in full (`glue-bench sweep`), `report --replay-pruning` on it, then the same grid
under another name with `run --prune asha`, and compares the two runs measured here in one invocation: device-
hours (the jobs' own wall seconds x devices), the sweep's wall time (first job start to last job end, from
`events.jsonl`), and per task and method the setting each run selected and its score. With `--work` an existing
folder is reused: done jobs are never rerun, so a finished sweep is only reported again. Offline; the README's
pruning table and the full run's tested differences, ranking and tuning cost are rewritten between its
`pruning:study` and `study:report` markers, and the full run's report files are copied to docs/pruning-study/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SWEEP = ROOT / "jobs" / "pruning-study.yaml"


def glue_bench(*args: str, cwd: Path, env: dict) -> None:
    subprocess.run([str(Path(sys.executable).with_name("glue-bench")), *args], cwd=cwd, env=env, check=True)


def wall_span(jobs_dir: Path) -> float:
    """Seconds from the first job's start to the last job's end, from the runner's events."""
    events = [json.loads(line) for line in (jobs_dir / "events.jsonl").read_text().splitlines()]
    starts = [e["time"] for e in events if e["event"] == "start"]
    ends = [e["time"] for e in events if e["event"] in ("done", "failed")]
    return max(ends) - min(starts)


def selections(report_json: Path) -> dict[tuple[str, str], dict]:
    data = json.loads(report_json.read_text())
    out = {}
    for row in data["rows"]:
        if row["kind"] == "method":
            for task, s in row["selection"].items():
                out[(task, row["label"])] = {"learning_rate": s["learning_rate"], "seeds": s["seeds"],
                                             "score": row["task_scores"][task]}
    return out


def device_hours(report_json: Path) -> float:
    return sum(per["all"] for per in json.loads(report_json.read_text())["device_hours"].values())


def run(work: Path, slots: int, reduction: int) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
           "GLUE_DATA_DIR": os.environ.get("GLUE_DATA_DIR", str(ROOT.parent / "shared" / "glue_data"))}
    glue_bench("sweep", str(SWEEP), "--slots", str(slots), cwd=work, env=env)
    glue_bench("report", "results/pruning-study", "--replay-pruning", "--prune-reduction", str(reduction),
               cwd=work, env=env)
    asha = work / "pruning-study-asha.yaml"
    asha.write_text(SWEEP.read_text().replace("name: pruning-study", "name: pruning-study-asha"))
    glue_bench("plan", str(asha), cwd=work, env=env)
    glue_bench("run", "jobs/pruning-study-asha", "--slots", str(slots), "--prune", "asha", cwd=work, env=env)
    glue_bench("report", "results/pruning-study-asha", cwd=work, env=env)
    full_json = work / "results" / "pruning-study" / "report" / "report.json"
    asha_json = work / "results" / "pruning-study-asha" / "report" / "report.json"
    replay = json.loads((work / "results" / "pruning-study" / "report" / "pruning.json").read_text())
    full_sel, asha_sel = selections(full_json), selections(asha_json)
    pruned = [json.loads(p.read_text()).get("pruned") for p in (work / "results" / "pruning-study-asha").glob(
        "*/metrics.json")]
    groups = []
    for g in replay["groups"]:
        key = (g["task"], g["config"])
        groups.append({**{k: g[k] for k in ("task", "config", "jobs", "pruned", "saved_share", "selection_changed",
                                          "score", "score_with_pruning")},
                       "full_lr": full_sel[key]["learning_rate"], "full_score": full_sel[key]["score"],
                       "asha_lr": asha_sel.get(key, {}).get("learning_rate"),
                       "asha_score": asha_sel.get(key, {}).get("score")})
    full_hours, asha_hours = device_hours(full_json), device_hours(asha_json)
    return {"sweep": str(SWEEP.relative_to(ROOT)), "reduction": reduction, "slots": slots,
            "jobs": len(pruned), "pruned_live": sum(1 for p in pruned if p),
            "pruned_replay": sum(g["pruned"] for g in replay["groups"]),
            "device_hours": {"full": round(full_hours, 4), "asha": round(asha_hours, 4),
                             "ratio": round(asha_hours / full_hours, 4)},
            "replay_saved_share": round(sum(g["saved_device_hours"] for g in replay["groups"])
                                        / sum(g["device_hours"] for g in replay["groups"]), 4),
            "wall_seconds": {"full": round(wall_span(work / "jobs" / "pruning-study"), 1),
                             "asha": round(wall_span(work / "jobs" / "pruning-study-asha"), 1)},
            "groups": groups}


def table(result: dict) -> str:
    names = {"rte": "RTE", "mrpc": "MRPC", "stsb": "STS-B"}
    lines = ["| task | configuration | replay: pruned | replay: saved | replay: selection changed | replay: Δ score "
             "| full run: lr, score | pruned run: lr, score |", "|" + "---|" * 8]
    for g in result["groups"]:
        delta = None if g["score"] is None or g["score_with_pruning"] is None else g["score_with_pruning"] - g["score"]
        lines.append(f"| {names.get(g['task'], g['task'])} | {g['config']} | {g['pruned']}/{g['jobs']} | "
                     f"{100 * (g['saved_share'] or 0):.0f}% | {'yes' if g['selection_changed'] else 'no'} | "
                     f"{'-' if delta is None else f'{delta:+.1f}'} | {g['full_lr']:g}, {g['full_score']:.1f} | "
                     + (f"{g['asha_lr']:g}, {g['asha_score']:.1f} |" if g["asha_lr"] is not None else "- |"))
    d, w = result["device_hours"], result["wall_seconds"]
    lines.append("")
    lines.append(f"Device-hours: {d['full']:.2f} in full, {d['asha']:.2f} pruned live (ratio {d['ratio']:.2f}; the "
                 f"replay predicted saving {100 * result['replay_saved_share']:.0f}% of the training after the rungs); "
                 f"wall time {w['full'] / 60:.1f} min in full, {w['asha'] / 60:.1f} min pruned, on {result['slots']} "
                 f"CPU slots. Jobs pruned: {result['pruned_replay']} of {result['jobs']} in the replay, "
                 f"{result['pruned_live']} live (reduction {result['reduction']}, rungs after epochs 1 and 2 of 4).")
    return "\n".join(lines)


def sections(report_md: str, titles: tuple[str, ...]) -> str:
    """The named `## ` sections of a report.md, as they are (headings one level down)."""
    out, keep = [], False
    for line in report_md.splitlines():
        if line.startswith("## "):
            keep = line[3:] in titles
        if keep:
            out.append("#" + line if line.startswith("## ") else line)
    return "\n".join(out).strip()


def rewrite_readme(text_block: str, report_block: str) -> None:
    text = README.read_text()
    text = re.sub(r"<!-- pruning:study -->.*?<!-- /pruning:study -->",
                  f"<!-- pruning:study -->\n{text_block}\n<!-- /pruning:study -->", text, flags=re.S)
    text = re.sub(r"<!-- study:report -->.*?<!-- /study:report -->",
                  f"<!-- study:report -->\n{report_block}\n<!-- /study:report -->", text, flags=re.S)
    tmp = README.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, README)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks pruning", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="a folder to run in (or reuse)")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--reduction", type=int, default=2, help="the replay's reduction (the sweep's is 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results-pruning.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="glue-bench-pruning-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        result = run(work, args.slots, args.reduction)
        report = work / "results" / "pruning-study" / "report"
        docs = ROOT / "docs" / "pruning-study"
        docs.mkdir(exist_ok=True)
        for name in ("report.md", "report.json", "pruning.json", "expected_validation.png", "score_vs_parameters.png"):
            (docs / name).write_bytes((report / name).read_bytes())
        report_block = sections((report / "report.md").read_text(), ("Differences", "Ranking across tasks",
                                                                      "Tuning cost", "Device-hours"))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    rewrite_readme(table(result), report_block)
    print(table(result))


if __name__ == "__main__":
    main()
