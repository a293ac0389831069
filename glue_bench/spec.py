"""The job spec: one fine-tuning job, as a frozen dataclass that round-trips through JSON.

A job's id is a readable prefix plus a hash of only what determines its result. Paths (the data folder,
a model folder's location), GPU counts, micro-batching and logging never enter it, so moving data or
changing hardware renames nothing. A field whose value equals its default is left out of the hash, so
adding a field with a default later keeps every existing id (defaults are therefore never changed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from glue_bench import choices
from glue_bench.choices import Method, NonLinearity, Precision, Prune, WandbMode
from glue_bench.errors import GlueBenchError, SpecFieldError
from glue_bench.method_config import FAMILIES, METHOD_PARAMS, id_part
from glue_bench.model_source import model_identity
from glue_bench.tasks import TASKS


def _field(default: Any = dataclasses.MISSING, *, in_id: bool = True, grid: bool = True, cli: bool = True,
           flag: str | None = None, aliases: tuple[str, ...] = (), default_factory: Any = dataclasses.MISSING):
    """A spec field with its metadata, the one place that says how the field is used elsewhere:
    `in_id`: it enters the job id (False: where or how a job runs, not what it computes); `grid`: it is a
    sweep grid key (plus `aliases`, e.g. `seeds`); `cli`: `glue-bench train` has a flag for it (`flag`, else
    the field name with dashes)."""
    metadata = {"in_id": in_id, "grid": grid, "cli": cli, "flag": flag, "aliases": aliases}  # see `meta`
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """One GLUE fine-tuning job: task, model, method and every hyperparameter."""

    task: str = _field(grid=False)
    """GLUE task (`cola`, `sst2`, `mrpc`, `stsb`, `qqp`, `mnli`, `qnli`, `rte`, `wnli`)."""
    model: str = _field(grid=False)
    """Hub id (`bert-base-uncased`) or a local model folder."""
    method: Method = _field("full", grid=False)
    """The method family (docs/methods.md)."""
    data: str = _field("auto", in_id=False, grid=False, flag="data-dir")
    """`auto` (GLUE_DATA_DIR if set, else the hub), `hub`, or a classic glue_data folder."""
    bottleneck: int | None = None
    """Adapter size m (exact; required for `houlsby` and `pfeiffer`)."""
    non_linearity: NonLinearity = "gelu"
    """Adapter non-linearity."""
    adapter_init_std: float = 1e-3
    """Std of the adapters' normal init (the original code's 1e-3; the paper text says 1e-2)."""
    rank: int | None = None
    """LoRA rank r (required for `lora`)."""
    alpha: float | None = None
    """LoRA alpha: the update is scaled by alpha / r (None: alpha = r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA branch's input."""
    target_modules: str | None = None
    """Projections `lora` / `ia3` adapt: a preset (qv, qkv, attention, all) or comma-separated module names
    relative to a layer (`query,value`, `output.dense`); None: lora qv, ia3 key,value,output.dense."""
    loraplus_ratio: float | None = None
    """LoRA+ (Hayou et al. 2024; `lora`, `dora`, `pissa`): the B matrices learn at this x learning_rate (None: at
    learning_rate, plain LoRA)."""
    init_rank: int | None = None
    """AdaLoRA: the rank each projection starts with (None: 1.5 x rank, rounded up); `rank` is the average rank
    the budget ends at."""
    adalora_tinit: int = 0
    """AdaLoRA: optimizer steps before the budget starts to shrink (the paper's t_i)."""
    adalora_tfinal: int = 0
    """AdaLoRA: last optimizer steps with the final budget fixed (the paper's t_f)."""
    adalora_delta_t: int = 1
    """AdaLoRA: optimizer steps between two budget reallocations (the paper's Delta T)."""
    orth_reg_weight: float = 0.1
    """AdaLoRA: weight of the penalty that keeps P and Q orthogonal (the paper's gamma, 0.1)."""
    n_frequency: int | None = None
    """FourierFT: spectral coefficients trained per projection (required for `fourierft`)."""
    fourier_scaling: float = 150.0
    """FourierFT: scale of the spectral update (peft's default)."""
    block_size: int | None = None
    """BOFT / OFT: the size b of each orthogonal block (required for `boft` and `oft`)."""
    butterfly_factor: int = 1
    """BOFT: butterfly factors m (1: one block-diagonal rotation, as OFT). Needs peft's CUDA kernel above 1."""
    peft_type: str | None = _field(None, aliases=("type",))
    """`peft`: the peft tuner's type name (LOKR, LOHA, C3A, ...; peft.PeftType); `type` in a sweep's section."""
    peft_options: tuple[tuple[str, Any], ...] = _field(default_factory=tuple, grid=False, cli=False)
    """`peft`: the tuner's own config keys and values, passed through (a sweep's `peft` section's other keys;
    a list-valued key is one comma-separated string)."""
    train_pooler: bool = False
    """Train BERT's pooler too (methods that freeze the encoder; for checkpoints whose pooler was never
    trained, such as all-MiniLM-L6-v2)."""
    learning_rate: float = 2e-5
    """Peak learning rate of AdamW."""
    init_from: str | None = None
    """Start the method's weights (adapters, or the encoder under full fine-tuning; never the task head) from
    another job's trained ones: that job's id, its folder a sibling of this job's. A sweep says `init_from: mnli`
    and plan puts the id of the MNLI job with the same method configuration and seed here (LoRA's MRPC, RTE and
    STS-B start from its MNLI run); the dependent job waits for it. None: from the pretrained model."""
    init_from_setting: str | None = _field(None, in_id=False, grid=False, cli=False)
    """The source job's setting (plan sets it with `init_from`): the seeds of one setting start from the sources of
    one setting, so the report averages them together."""
    head_learning_rate: float | None = None
    """Peak learning rate of the task head (VeRA's and FourierFT's recipes train it at its own rate; None: the
    learning rate). The same schedule applies."""
    batch_size: int = 32
    """Global batch size: per-device batch x gradient accumulation x world size."""
    epochs: int = 3
    """Training epochs."""
    max_seq_length: int = 128
    """Tokens per example after truncation."""
    warmup_ratio: float = 0.1
    """Fraction of the optimizer steps spent in linear warmup."""
    weight_decay: float = 0.01
    """AdamW weight decay (never on biases and LayerNorm weights)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    seed: int = _field(42, aliases=("seeds",))
    """Seed for initialisation, dropout and data order."""
    data_seed: int = 0
    """Seed that picks the `max_train_samples` / `max_eval_samples` subsets (same subset for every seed)."""
    max_train_samples: int | None = None
    """Random training subset size (None: all)."""
    max_eval_samples: int | None = None
    """Random dev subset size per dev split (None: all). Test splits are always predicted whole."""
    heldout_train_rows: int | None = None
    """Training rows held out as the choosing set of the `held-out` report protocol (the papers hold out 1,000 for
    MNLI, QQP and QNLI): never trained on, scored at every evaluation (None: none held out)."""
    predict_test: bool = True
    """Predict the test splits (and AX for MNLI) with the best dev weights."""
    group_by_length: bool = True
    """Group training batches by length (less padding); off: plain shuffled batches."""
    eval_every_steps: int | None = None
    """Evaluate every N optimizer steps as well as at each epoch end (None: epoch ends only)."""
    precision: Precision = "auto"
    """`auto`: bf16 on GPUs that have it, fp16 with loss scaling on older GPUs, fp32 on the CPU."""
    zero_stage: int = 0
    """DeepSpeed ZeRO stage (0, 1 or 2)."""
    num_gpus: int = _field(0, in_id=False, grid=False)
    """GPUs (data-parallel ranks) for this job; 0 runs on the CPU."""
    num_procs: int = _field(1, in_id=False, grid=False)
    """CPU data-parallel processes when `num_gpus` is 0."""
    micro_batch_size: int | None = _field(None, in_id=False)
    """Per-device batch (None: batch_size / world size); the rest is gradient accumulation."""
    log_every_steps: int = _field(10, in_id=False)
    """Steps between history records."""
    keep_checkpoints: bool = _field(False, in_id=False)
    """Keep the resumable `last` checkpoint after the job is done."""
    prune: Prune = _field("none", in_id=False)
    """`asha`: stop the job at a rung when its dev score is not in the top 1/`prune_reduction` of the scores its
    group (same task and method configuration) has reached there so far (docs/pruning.md); `none`: run it out."""
    prune_reduction: int = _field(3, in_id=False)
    """ASHA's reduction factor: the share of jobs that go on from a rung is 1/this."""
    prune_min_epochs: int = _field(1, in_id=False)
    """ASHA's first rung, in epochs; the later rungs are this x reduction^k (each before the last epoch)."""
    tags: tuple[str, ...] = _field(default_factory=tuple, in_id=False, grid=False, cli=False)
    """Free-form labels (not part of the id)."""
    wandb: WandbMode = _field("auto", in_id=False, grid=False)
    """wandb mode; `auto`: WANDB_MODE if set, else online with credentials, else offline."""
    wandb_project: str = _field("glue-bench", in_id=False, grid=False)
    """wandb project."""
    wandb_entity: str | None = _field(None, in_id=False, grid=False)
    """wandb entity (team or user); None: the default of the credentials."""
    wandb_group: str | None = _field(None, in_id=False, grid=False)
    """wandb group: the sweep name for sweep jobs."""

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> GlueBenchError:
            return SpecFieldError(name, getattr(self, name), why)

        for name, kind in FIELD_KINDS.items():
            value = getattr(self, name)
            if value is None:
                if not FIELD_OPTIONAL[name]:
                    raise bad(name, "must be given (it cannot be null)")
                continue
            if kind is bool and not isinstance(value, bool):
                raise bad(name, "must be true or false")
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise bad(name, "must be an integer")
            if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise bad(name, "must be a number")
            if kind is str and not isinstance(value, str):
                raise bad(name, "must be a string")
        if self.task not in TASKS or self.task == "ax":
            raise bad("task", f"choose one of {', '.join(t for t in TASKS if t != 'ax')}")
        if not self.model:
            raise bad("model", "give a hub id or a model folder")
        for name, choice in (("method", Method), ("non_linearity", NonLinearity), ("wandb", WandbMode),
                             ("precision", Precision), ("prune", Prune)):
            if getattr(self, name) not in choices.values(choice):
                raise bad(name, f"choose one of {', '.join(choices.values(choice))}")
        family = FAMILIES[self.method]
        for name in METHOD_PARAMS:
            if name not in family.params and getattr(self, name) != default_of(name):
                takes = ", ".join(f.name for f in FAMILIES.values() if name in f.params)
                raise bad(name, f"{name} does not apply to {self.method} (it is a parameter of {takes})")
        for name in family.required:
            if getattr(self, name) is None:
                raise bad(name, f"{self.method} needs {name}")
        for name in ("bottleneck", "rank", "init_rank", "n_frequency", "block_size", "butterfly_factor",
                     "adalora_delta_t"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise bad(name, "must be a positive integer")
        for name in ("adalora_tinit", "adalora_tfinal"):
            if getattr(self, name) < 0:
                raise bad(name, "must be 0 or a positive number of steps")
        for name in ("loraplus_ratio", "head_learning_rate", "fourier_scaling"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise bad(name, "must be a positive number")
        if not (math.isfinite(self.orth_reg_weight) and self.orth_reg_weight >= 0):
            raise bad("orth_reg_weight", "must be >= 0")
        if self.init_rank is not None and self.rank is not None and self.init_rank < self.rank:
            raise bad("init_rank", f"must be at least the final average rank ({self.rank})")
        if self.method == "adalora" and self.zero_stage > 0:
            raise bad("zero_stage", "adalora reads each step's gradients, which ZeRO moves out of the parameters: "
                      "use zero_stage 0")
        self._check_peft_options(bad)
        if self.init_from is not None:
            source_task = self.init_from.split("-")[0]
            if not re.fullmatch(r"[a-z0-9]+(-[A-Za-z0-9.+]+)*", self.init_from) or source_task not in TASKS:
                raise bad("init_from", "a GLUE task in a sweep (mnli), or the id of the job to start from")
            if source_task == self.task:
                raise bad("init_from", f"a {self.task} job cannot start from a {source_task} job")
        if self.alpha is not None and not self.alpha > 0:
            raise bad("alpha", "must be a positive number")
        if not 0 <= self.lora_dropout < 1:
            raise bad("lora_dropout", "must be in [0, 1)")
        if self.target_modules is not None and not self.target_modules.strip(" ,"):
            raise bad("target_modules", "give a preset (qv, qkv, attention, all) or comma-separated module names")
        if self.zero_stage not in (0, 1, 2):
            raise bad("zero_stage", "choose 0, 1 or 2")
        for name in ("learning_rate", "adapter_init_std", "max_grad_norm"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise bad(name, "must be a positive number")
        for name in ("batch_size", "epochs", "max_seq_length", "num_procs", "log_every_steps", "prune_min_epochs"):
            if getattr(self, name) < 1:
                raise bad(name, "must be a positive integer")
        for name in ("max_train_samples", "max_eval_samples", "eval_every_steps", "micro_batch_size",
                     "heldout_train_rows"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise bad(name, "must be a positive integer or null")
        if self.num_gpus < 0:
            raise bad("num_gpus", "must be 0 (CPU) or a positive integer")
        if not 0 <= self.weight_decay:
            raise bad("weight_decay", "must be >= 0")
        if not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", "must be in [0, 1)")
        if self.prune_reduction < 2:
            raise bad("prune_reduction", "must be an integer of 2 or more")
        if self.heldout_train_rows is not None and self.max_train_samples is not None \
                and self.heldout_train_rows >= self.max_train_samples:
            raise bad("heldout_train_rows", f"must be fewer than max_train_samples ({self.max_train_samples})")

    def _check_peft_options(self, bad) -> None:
        if self.peft_type is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", self.peft_type):
            raise bad("peft_type", "a peft tuner type name such as LOKR, LOHA or C3A")
        if not isinstance(self.peft_options, tuple) or not all(
                isinstance(o, tuple) and len(o) == 2 and isinstance(o[0], str) for o in self.peft_options):
            raise bad("peft_options", "(key, value) pairs")
        for key, value in self.peft_options:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise bad("peft_options", f"{key!r} is not a config key name")
            if key in ("target_modules", "task_type", "peft_type", "modules_to_save"):
                raise bad("peft_options", f"{key} is set by glue-bench (target_modules is its own sweep key)")
            if value is not None and not isinstance(value, bool | int | float | str):
                raise bad("peft_options", f"{key}: a scalar value (a list is one comma-separated string)")
        if [k for k, _ in self.peft_options] != sorted({k for k, _ in self.peft_options}):
            raise bad("peft_options", "each key once, in sorted order")

    @property
    def world_size(self) -> int:
        return self.num_gpus if self.num_gpus > 0 else self.num_procs

    def batch_layout(self, world_size: int) -> tuple[int, int]:
        """(per-device micro-batch, gradient accumulation steps) that make up the global batch."""
        micro = self.micro_batch_size or self.batch_size // world_size
        if micro < 1 or self.batch_size % (micro * world_size):
            raise GlueBenchError(
                f"batch_size {self.batch_size} is not divisible into {world_size} ranks x micro-batch {micro}"
            )
        return micro, self.batch_size // (micro * world_size)

    def smallest_batch(self, world_size: int) -> int:
        """The fewest rows a global batch may have: one per micro-batch of every rank (a smaller last batch of an
        epoch is skipped)."""
        return world_size * self.batch_layout(world_size)[1]

    def steps_per_epoch(self, train_rows: int, world_size: int) -> int:
        """Optimizer steps of one epoch: every full global batch, and the last partial one unless it is smaller
        than `smallest_batch` (training and pricing both count steps here)."""
        return train_rows // self.batch_size + (train_rows % self.batch_size >= self.smallest_batch(world_size))

    def eval_batch(self, world_size: int) -> int:
        """Rows per evaluation batch on each rank: twice the training micro-batch (no activations are kept for a
        backward pass), at least 32."""
        return max(2 * self.batch_layout(world_size)[0], 32)

    @property
    def job_id(self) -> str:
        """Readable prefix + hash of what determines the result (`rte-houlsby-m64-lr3e-4-e20-s1-3fa2c1d0`)."""
        parts = [self.task, id_part(self)]
        parts += [f"lr{format_lr(self.learning_rate)}", f"e{self.epochs}", f"s{self.seed}"]
        return "-".join(parts) + "-" + self.content_hash()[:8]

    def _keyed(self) -> dict[str, Any]:
        """What determines the result: every field that enters the id and is not at its default."""
        keyed: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not meta(f, "in_id") or (default_of(f.name) is not dataclasses.MISSING and value == default_of(f.name)):
                continue
            keyed[f.name] = model_identity(value) if f.name == "model" else value
        return keyed

    def content_hash(self) -> str:
        blob = json.dumps(self._keyed(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def init_from_task(self) -> str | None:
        """The task of the job this one starts from (`mnli`), or None."""
        return self.init_from.split("-")[0] if self.init_from else None

    @property
    def setting_key(self) -> str:
        """The setting of a job: everything that enters its id except the seed. Seeds of one setting are
        averaged by the report; two jobs with different settings are never merged."""
        keyed = self._keyed()
        keyed.pop("seed", None)
        if self.init_from_setting is not None:  # the source's id names its seed: its setting stands for it
            keyed["init_from"] = self.init_from_setting
        return json.dumps(keyed, sort_keys=True, default=str)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tags"] = list(self.tags)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def replace(self, **changes: Any) -> JobSpec:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise GlueBenchError(f"job spec has unknown field {unknown[0]!r}")
        for name in ("task", "model"):
            if name not in d:
                raise GlueBenchError(f"job spec is missing the field {name!r}")
        d = dict(d)
        if "tags" in d:
            if not isinstance(d["tags"], list | tuple) or not all(isinstance(t, str) for t in d["tags"]):
                raise SpecFieldError("tags", d["tags"], "a list of strings")
            d["tags"] = tuple(d["tags"])
        if "peft_options" in d:
            options = d["peft_options"]
            if isinstance(options, dict):
                options = sorted(options.items())
            if not isinstance(options, list | tuple) or not all(isinstance(o, list | tuple) and len(o) == 2
                                                                 for o in options):
                raise SpecFieldError("peft_options", d["peft_options"], "a mapping or a list of [key, value] pairs")
            d["peft_options"] = tuple(sorted((str(k), v) for k, v in options))
        try:
            return cls(**d)
        except TypeError as e:
            raise GlueBenchError(f"job spec: {e}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> JobSpec:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise GlueBenchError(f"no job spec at {path}") from None
        except IsADirectoryError:
            raise GlueBenchError(f"{path} is a folder: give a job spec JSON file") from None
        except UnicodeDecodeError:
            raise GlueBenchError(f"{path}: not a text file (a job spec is JSON)") from None
        except json.JSONDecodeError as e:
            raise GlueBenchError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise GlueBenchError(f"{path}: a job spec is a JSON object")
        return cls.from_dict(d)


def default_of(name: str) -> Any:
    """A field's default value (a `default_factory`'s value for tuple fields; MISSING for task and model)."""
    f = FIELDS[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


FIELD_DEFAULTS = {"in_id": True, "grid": True, "cli": True, "flag": None, "aliases": ()}


def meta(f: dataclasses.Field, key: str) -> Any:
    """A field's metadata value (fields declared without `_field` have the defaults: in the id, a grid key,
    a CLI flag)."""
    return f.metadata.get(key, FIELD_DEFAULTS[key])


FIELD_TYPES: dict[str, Any] = typing.get_type_hints(JobSpec)
FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(JobSpec)}
GRID_FIELDS: dict[str, str] = {key: f.name for f in FIELDS.values() if meta(f, "grid")
                               for key in (f.name, *meta(f, "aliases"))}
"""Sweep grid key -> spec field (each takes a scalar or a list)."""
NOT_IN_ID = frozenset(name for name, f in FIELDS.items() if not meta(f, "in_id"))
"""Fields that say where or how a job runs, not what it computes."""


def field_kind(name: str) -> type | None:
    """The scalar type of a field (`int` for `int | None`), or None for a tuple or a string choice."""
    kind = FIELD_TYPES[name]
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) is Literal:
        return str
    if args and typing.get_origin(kind) is not tuple:
        kind = args[0]
    return kind if kind in (bool, int, float, str) else None


FIELD_KINDS: dict[str, type | None] = {name: field_kind(name) for name in FIELDS}
"""Field -> its scalar type (see `field_kind`), worked out once: every spec checks its values against it."""
FIELD_OPTIONAL: dict[str, bool] = {name: type(None) in typing.get_args(FIELD_TYPES[name]) for name in FIELDS}
"""Field -> whether it may be null (its type admits None)."""


def field_docs() -> dict[str, str]:
    """Field -> its one-line docstring (the string literal under the field in the class body)."""
    import ast
    import inspect

    docs: dict[str, str] = {}
    body = ast.parse(inspect.getsource(JobSpec)).body[0].body
    for node, after in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs


def spec_from_flags(spec_file: str | os.PathLike | None, flags: dict[str, Any]) -> JobSpec:
    """A job spec from an optional spec file with command-line values on top (None: not given)."""
    from glue_bench.tasks import get_task

    base = JobSpec.load(spec_file).to_dict() if spec_file else {}
    flags = {k: v for k, v in flags.items() if v is not None}
    if "task" in flags:
        flags["task"] = get_task(flags["task"]).name
    return JobSpec.from_dict({**base, **flags})


def format_lr(lr: float) -> str:
    """`3e-05` -> `3e-5`, `0.001` -> `1e-3`, `2.5e-4` -> `2.5e-4`."""
    mantissa, exponent = f"{lr:.6e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"
