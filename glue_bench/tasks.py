"""GLUE facts as data: fields, labels, metrics, splits, file layouts, submission names and sizes.

Nothing here imports torch; `glue-bench tasks`, planning and reporting read these tables.
Sources: the GLUE paper, the Hugging Face `nyu-mll/glue` dataset and the classic `glue_data/` files
(see docs/glue.md in this repository).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from glue_bench.errors import GlueBenchError

HUB_DATASET = "nyu-mll/glue"

# Our split names -> the hub's split names. AX is predicted by the MNLI model; it lives in its own
# hub config ("ax", split "test") and its own classic file.
HUB_SPLITS = {
    "train": "train",
    "dev": "validation",
    "test": "test",
    "dev_matched": "validation_matched",
    "dev_mismatched": "validation_mismatched",
    "test_matched": "test_matched",
    "test_mismatched": "test_mismatched",
    "ax": "test",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class FileLayout:
    """Where one split lives in a classic glue_data folder and how its columns are read."""

    path: str
    """File path relative to the glue_data folder."""
    header: bool
    """Whether the first line is a header (its column count then fixes the row width)."""
    text_columns: tuple[int, ...]
    """0-based columns holding the text fields, in the order of `Task.text_fields`."""
    label_column: int | None = None
    """0-based label column (negative counts from the end); None for unlabelled test files."""
    index_column: int | None = None
    """0-based column holding the example index (test files); None: the row number."""
    num_columns: int | None = None
    """Row width for files without a header."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """One GLUE task: everything the harness needs to know about it, as data."""

    name: str
    """Short lower-case name used everywhere in glue-bench (`sst2`) and the hub config name."""
    display: str
    """The name GLUE prints (`SST-2`)."""
    text_fields: tuple[str, ...]
    """Hub column names of the text inputs (one or two)."""
    label_names: tuple[str, ...] | None
    """Label names by id; None for the regression task STS-B."""
    metrics: tuple[tuple[str, str], ...]
    """(dev split, metric) pairs reported for the task."""
    score: tuple[tuple[str, str], ...]
    """(dev split, metric) pairs whose mean is the task score (GLUE paper, section 3.4)."""
    dev_splits: tuple[str, ...]
    """Labelled evaluation splits."""
    test_splits: tuple[str, ...]
    """Unlabelled splits predicted for the leaderboard."""
    submission_files: dict[str, str] = field(default_factory=dict)
    """Test split -> file name in the leaderboard zip."""
    sizes: dict[str, int] = field(default_factory=dict)
    """Official row counts per split."""
    glue_dir: str = ""
    """Folder name in the classic glue_data layout."""
    layouts: dict[str, FileLayout] = field(default_factory=dict)
    """Classic file layout per split."""
    string_labels: bool = False
    """Whether classic files spell labels as names (`entailment`) rather than ids."""

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def splits(self) -> tuple[str, ...]:
        """Every split the task has, training split first (AX has none)."""
        return tuple(s for s in ("train",) if s in self.sizes) + self.dev_splits + self.test_splits

    @property
    def prediction_splits(self) -> tuple[str, ...]:
        return self.dev_splits + self.test_splits

    def hub_config(self, split: str) -> str:
        return "ax" if split == "ax" else self.name


def _std(glue_dir: str, text: tuple[int, ...], label: int, test_text: tuple[int, ...], *,
         header: bool = True, test_columns: int | None = None) -> dict[str, FileLayout]:
    layout = {s: FileLayout(path=f"{glue_dir}/{s}.tsv", header=header, text_columns=text, label_column=label)
              for s in ("train", "dev")}
    layout["test"] = FileLayout(path=f"{glue_dir}/test.tsv", header=True, text_columns=test_text,
                                index_column=0, num_columns=test_columns)
    return layout


_AX_LAYOUT = FileLayout(path="diagnostic/diagnostic.tsv", header=True, text_columns=(1, 2), index_column=0)
_NLI = ("entailment", "not_entailment")
_ACC = (("dev", "accuracy"),)

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task(
            name="cola", display="CoLA", text_fields=("sentence",), label_names=("unacceptable", "acceptable"),
            metrics=(("dev", "matthews_correlation"),), score=(("dev", "matthews_correlation"),),
            dev_splits=("dev",), test_splits=("test",), submission_files={"test": "CoLA.tsv"},
            sizes={"train": 8551, "dev": 1043, "test": 1063}, glue_dir="CoLA",
            layouts={
                "train": FileLayout(path="CoLA/train.tsv", header=False, text_columns=(3,), label_column=1,
                                    num_columns=4),
                "dev": FileLayout(path="CoLA/dev.tsv", header=False, text_columns=(3,), label_column=1,
                                  num_columns=4),
                "test": FileLayout(path="CoLA/test.tsv", header=True, text_columns=(1,), index_column=0),
            },
        ),
        Task(
            name="sst2", display="SST-2", text_fields=("sentence",), label_names=("negative", "positive"),
            metrics=_ACC, score=_ACC, dev_splits=("dev",), test_splits=("test",),
            submission_files={"test": "SST-2.tsv"}, sizes={"train": 67349, "dev": 872, "test": 1821},
            glue_dir="SST-2", layouts=_std("SST-2", (0,), 1, (1,)),
        ),
        Task(
            name="mrpc", display="MRPC", text_fields=("sentence1", "sentence2"),
            label_names=("not_equivalent", "equivalent"),
            metrics=(("dev", "f1"), ("dev", "accuracy")), score=(("dev", "f1"), ("dev", "accuracy")),
            dev_splits=("dev",), test_splits=("test",), submission_files={"test": "MRPC.tsv"},
            sizes={"train": 3668, "dev": 408, "test": 1725}, glue_dir="MRPC",
            layouts=_std("MRPC", (3, 4), 0, (3, 4)),
        ),
        Task(
            name="stsb", display="STS-B", text_fields=("sentence1", "sentence2"), label_names=None,
            metrics=(("dev", "pearson"), ("dev", "spearman")), score=(("dev", "pearson"), ("dev", "spearman")),
            dev_splits=("dev",), test_splits=("test",), submission_files={"test": "STS-B.tsv"},
            sizes={"train": 5749, "dev": 1500, "test": 1379}, glue_dir="STS-B",
            layouts=_std("STS-B", (7, 8), 9, (7, 8)),
        ),
        Task(
            name="qqp", display="QQP", text_fields=("question1", "question2"),
            label_names=("not_duplicate", "duplicate"),
            metrics=(("dev", "f1"), ("dev", "accuracy")), score=(("dev", "f1"), ("dev", "accuracy")),
            dev_splits=("dev",), test_splits=("test",), submission_files={"test": "QQP.tsv"},
            sizes={"train": 363846, "dev": 40430, "test": 390965}, glue_dir="QQP",
            layouts=_std("QQP", (3, 4), 5, (1, 2)),
        ),
        Task(
            name="mnli", display="MNLI", text_fields=("premise", "hypothesis"),
            label_names=("entailment", "neutral", "contradiction"), string_labels=True,
            metrics=(("dev_matched", "accuracy"), ("dev_mismatched", "accuracy")),
            score=(("dev_matched", "accuracy"), ("dev_mismatched", "accuracy")),
            dev_splits=("dev_matched", "dev_mismatched"), test_splits=("test_matched", "test_mismatched", "ax"),
            submission_files={"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv", "ax": "AX.tsv"},
            sizes={"train": 392702, "dev_matched": 9815, "dev_mismatched": 9832, "test_matched": 9796,
                   "test_mismatched": 9847, "ax": 1104},
            glue_dir="MNLI",
            layouts={
                "train": FileLayout(path="MNLI/train.tsv", header=True, text_columns=(8, 9), label_column=-1),
                "dev_matched": FileLayout(path="MNLI/dev_matched.tsv", header=True, text_columns=(8, 9),
                                          label_column=-1),
                "dev_mismatched": FileLayout(path="MNLI/dev_mismatched.tsv", header=True, text_columns=(8, 9),
                                             label_column=-1),
                "test_matched": FileLayout(path="MNLI/test_matched.tsv", header=True, text_columns=(8, 9),
                                           index_column=0),
                "test_mismatched": FileLayout(path="MNLI/test_mismatched.tsv", header=True, text_columns=(8, 9),
                                              index_column=0),
                "ax": _AX_LAYOUT,
            },
        ),
        Task(
            name="qnli", display="QNLI", text_fields=("question", "sentence"), label_names=_NLI,
            string_labels=True, metrics=_ACC, score=_ACC, dev_splits=("dev",), test_splits=("test",),
            submission_files={"test": "QNLI.tsv"}, sizes={"train": 104743, "dev": 5463, "test": 5463},
            glue_dir="QNLI", layouts=_std("QNLI", (1, 2), 3, (1, 2)),
        ),
        Task(
            name="rte", display="RTE", text_fields=("sentence1", "sentence2"), label_names=_NLI,
            string_labels=True, metrics=_ACC, score=_ACC, dev_splits=("dev",), test_splits=("test",),
            submission_files={"test": "RTE.tsv"}, sizes={"train": 2490, "dev": 277, "test": 3000},
            glue_dir="RTE", layouts=_std("RTE", (1, 2), 3, (1, 2)),
        ),
        Task(
            name="wnli", display="WNLI", text_fields=("sentence1", "sentence2"),
            label_names=("not_entailment", "entailment"), metrics=_ACC, score=_ACC,
            dev_splits=("dev",), test_splits=("test",), submission_files={"test": "WNLI.tsv"},
            sizes={"train": 635, "dev": 71, "test": 146}, glue_dir="WNLI",
            layouts=_std("WNLI", (1, 2), 3, (1, 2)),
        ),
        Task(
            name="ax", display="AX", text_fields=("premise", "hypothesis"),
            label_names=("entailment", "neutral", "contradiction"), metrics=(), score=(),
            dev_splits=(), test_splits=("ax",), submission_files={"ax": "AX.tsv"}, sizes={"ax": 1104},
            glue_dir="diagnostic", layouts={"ax": _AX_LAYOUT},
        ),
    ]
}

GLUE_TASKS: tuple[str, ...] = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")


def glue_score(task_scores: dict[str, float]) -> float | None:
    """The official GLUE score: the mean of the nine task scores (None unless all nine exist)."""
    if not all(t in task_scores for t in GLUE_TASKS):
        return None
    return statistics.fmean(task_scores[t] for t in GLUE_TASKS)
"""The nine tasks of the GLUE score, in the leaderboard's order (AX is reported apart)."""

_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "diagnostic": "ax"}


def get_task(name: str) -> Task:
    """The task called `name` (case-insensitive; `SST-2` and `sst2` both work)."""
    key = name.strip().lower() if isinstance(name, str) else name
    key = _ALIASES.get(key, key) if isinstance(key, str) else key
    if key not in TASKS:
        raise GlueBenchError(f"unknown task {name!r}; choose one of {', '.join(GLUE_TASKS)}")
    return TASKS[key]


def splits_present(task: Task, data_dir: Path) -> dict[str, bool]:
    """Which of the task's splits exist as files in a classic glue_data folder."""
    return {split: (data_dir / layout.path).is_file() for split, layout in task.layouts.items()}


# Mean non-pad tokens per example, truncated at 128, with BERT's uncased WordPiece vocabulary (that of
# bert-base-uncased and all-MiniLM-L6-v2), measured on the classic glue_data files. Where a split was not at
# hand: QNLI train and MNLI train take their dev split's mean; QQP (not in the data measured) is an assumption:
# two questions of about 11 words, 13 word pieces each, plus [CLS] and two [SEP].
MEAN_TOKENS: dict[tuple[str, str], float] = {
    ("cola", "train"): 11.3, ("cola", "dev"): 11.7, ("cola", "test"): 11.6,
    ("sst2", "train"): 13.3, ("sst2", "dev"): 25.2, ("sst2", "test"): 24.9,
    ("mrpc", "train"): 53.2, ("mrpc", "dev"): 53.2, ("mrpc", "test"): 53.0,
    ("stsb", "train"): 27.8, ("stsb", "dev"): 31.5, ("stsb", "test"): 27.3,
    ("qqp", "train"): 29.0, ("qqp", "dev"): 29.0, ("qqp", "test"): 29.0,
    ("mnli", "train"): 39.1, ("mnli", "dev_matched"): 39.1, ("mnli", "dev_mismatched"): 40.7,
    ("mnli", "test_matched"): 39.4, ("mnli", "test_mismatched"): 40.5, ("mnli", "ax"): 43.2,
    ("qnli", "train"): 51.0, ("qnli", "dev"): 51.0, ("qnli", "test"): 51.0,
    ("rte", "train"): 66.6, ("rte", "dev"): 64.6, ("rte", "test"): 63.1,
    ("wnli", "train"): 37.1, ("wnli", "dev"): 37.6, ("wnli", "test"): 57.8,
}
MEAN_TOKENS_MAX_LENGTH = 128


def mean_tokens(task: str, split: str, max_length: int) -> float:
    """The documented mean length, capped by a shorter truncation."""
    return min(MEAN_TOKENS.get((task, split), MEAN_TOKENS_MAX_LENGTH / 2), float(max_length))
