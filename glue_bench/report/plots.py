"""The report's figures (matplotlib, Agg). Families, markers and sizes come from the rows, not from a list here.

- `score_vs_parameters.png`: the Pareto view. Dev task score against trainable parameters (log x), one panel
  per task and one for the GLUE score (or the mean of the tasks present), one marker per family, and the
  frontier: the configurations no other beats with as few parameters.
- `score_vs_size.png`: for each family swept at several sizes (adapter bottleneck, LoRA rank), score
  against size per task, full fine-tuning dotted.
- `expected_validation.png`: expected best dev score against the number of settings tried, per task.

Every plot has the majority-class line where the report has it; a family has the same colour and marker in every
report (by its place in `FAMILIES`); labels are clipped to the axes and legends sit outside them.
"""

from __future__ import annotations

from pathlib import Path

from glue_bench.method_config import FAMILIES, METHODS, SIZE_LETTER
from glue_bench.report.aggregate import Row
from glue_bench.report.budgets import pareto_front
from glue_bench.tasks import GLUE_TASKS, TASKS

MARKERS = "so^vDP*Xph"
MAJORITY_STYLE = {"color": "black", "ls": "-.", "lw": 0.8}


def family_colour(family: str | None) -> str:
    """A family's fixed colour (tab10/tab20 by its place in `FAMILIES`)."""
    import matplotlib

    index = METHODS.index(family) if family in METHODS else len(METHODS)
    palette = matplotlib.colormaps["tab10" if len(METHODS) < 10 else "tab20"]
    return matplotlib.colors.to_hex(palette(index % palette.N))


def family_marker(family: str | None) -> str:
    return MARKERS[(METHODS.index(family) if family in METHODS else len(METHODS)) % len(MARKERS)]


def _majority(rows: list[Row], tasks: list[str]) -> float | None:
    """The majority-class score over `tasks` (their mean), if the report has it for all of them."""
    base = next((r for r in rows if r.kind == "baseline"), None)
    if base is None or not all(t in base.task_scores for t in tasks):
        return None
    return sum(base.task_scores[t] for t in tasks) / len(tasks)


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    return path


def _points(row: Row, tasks: list[str]) -> tuple[float, float] | None:
    """(mean trainable parameters, mean task score) over `tasks`, if the row has them all."""
    if not all(t in row.task_scores and t in row.trainable for t in tasks):
        return None
    return (sum(row.trainable[t] for t in tasks) / len(tasks), sum(row.task_scores[t] for t in tasks) / len(tasks))


def pareto_plot(rows: list[Row], out_dir: Path) -> Path | None:
    import matplotlib.pyplot as plt

    methods = [r for r in rows if r.kind == "method" and r.trainable]
    tasks = [t for t in GLUE_TASKS if any(t in r.task_scores for r in methods)]
    if not methods or not tasks:
        return None
    panels = [*([t] for t in tasks), tasks]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.4), squeeze=False)
    families = [f for f in METHODS if any(r.family == f for r in methods)]
    for ax, panel in zip(axes[0], panels, strict=True):
        everything = []
        for family in families:
            points = [(p, r) for r in methods if r.family == family for p in [_points(r, panel)] if p]
            if points:
                ax.plot([p[0] for p, _ in points], [p[1] for p, _ in points], family_marker(family),
                        color=family_colour(family), label=family, alpha=0.85)
                everything += [p for p, _ in points]
                for k, ((x, y), r) in enumerate(points):
                    if r.method is not None and r.method.size is not None:  # alternate sides: fewer collisions
                        ax.annotate(r.label.split(" ", 1)[1], (x, y), fontsize=6, textcoords="offset points",
                                    xytext=(3, 3 if k % 2 == 0 else -8), annotation_clip=True, clip_on=True)
        majority = _majority(rows, panel)
        if majority is not None:
            ax.axhline(majority, label="majority class", **MAJORITY_STYLE)
        front = pareto_front(everything)
        if len(front) > 1:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="grey", lw=1, ls="--",
                    label="frontier")
        ax.set_xscale("log")
        if len(panel) == 1:
            ax.set_title(TASKS[panel[0]].display)
        else:
            ax.set_title("GLUE score" if len(panel) == len(GLUE_TASKS) else f"mean of {len(panel)} tasks")
        ax.set_xlabel("trainable parameters")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("dev task score")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:  # every family, frontier and baseline once, whichever panel has it
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(len(labels), 8), frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path = _save(fig, out_dir / "score_vs_parameters.png")
    plt.close(fig)
    return path


def size_plot(rows: list[Row], out_dir: Path) -> Path | None:
    import matplotlib.pyplot as plt

    sized: dict[str, list[Row]] = {}
    for r in rows:
        if r.kind == "method" and r.method is not None and r.method.size is not None:
            sized.setdefault(r.family, []).append(r)
    sized = {f: rs for f, rs in sized.items() if len({r.method.size for r in rs}) > 1}
    if not sized:  # nothing to draw: a figure from an earlier report of this folder would describe other results
        (out_dir / "score_vs_size.png").unlink(missing_ok=True)
        return None
    full = next((r for r in rows if r.kind == "method" and r.family == "full"), None)
    fig, axes = plt.subplots(1, len(sized), figsize=(5 * len(sized), 3.5), squeeze=False)
    for ax, (family, members) in zip(axes[0], sized.items(), strict=True):
        tasks = [t for t in GLUE_TASKS if any(t in r.task_scores for r in members)]
        for task in tasks:
            best = {}
            for r in members:  # several rows of one size (e.g. with and without the pooler): the best
                if task in r.task_scores:
                    best[r.method.size] = max(best.get(r.method.size, float("-inf")), r.task_scores[task])
            points = sorted(best.items())
            line = ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=TASKS[task].display)
            if full is not None and task in full.task_scores:
                ax.axhline(full.task_scores[task], color=line[0].get_color(), ls=":", lw=1)
            majority = _majority(rows, [task])
            if majority is not None:
                ax.axhline(majority, color=line[0].get_color(), ls="-.", lw=0.8)
        size = FAMILIES[family].size
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"{size} {SIZE_LETTER[size]}")
        ax.set_title(family)
        ax.set_ylabel("dev task score\n(dotted: full fine-tuning; dash-dot: majority class)", fontsize=8)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = _save(fig, out_dir / "score_vs_size.png")
    plt.close(fig)
    return path


def expected_validation_plot(rows: list[Row], curves: list, out_dir: Path) -> Path | None:
    """Expected best dev score against settings tried, one panel per task, one line per configuration."""
    import matplotlib.pyplot as plt

    path = out_dir / "expected_validation.png"
    tasks = [t for t in GLUE_TASKS if any(c.task == t and c.settings > 1 for c in curves)]
    if not tasks:
        path.unlink(missing_ok=True)
        return None
    family = {r.label: r.family for r in rows if r.kind == "method"}
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for c in (c for c in curves if c.task == task):
            n = range(1, c.settings + 1)
            ax.plot(n, c.expected, family_marker(family.get(c.config)) + "-", ms=4,
                    color=family_colour(family.get(c.config)), label=c.config)
        majority = _majority(rows, [task])
        if majority is not None:
            ax.axhline(majority, label="majority class", **MAJORITY_STYLE)
        ax.set_title(TASKS[task].display)
        ax.set_xlabel("settings tried")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("expected best dev score")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(len(labels), 6), frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    _save(fig, path)
    plt.close(fig)
    return path


def plots(rows: list[Row], out_dir: Path, analysis=None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    made = [pareto_plot(rows, out_dir), size_plot(rows, out_dir)]
    if analysis is not None:
        made.append(expected_validation_plot(rows, analysis.curves, out_dir))
    return [p for p in made if p is not None]
