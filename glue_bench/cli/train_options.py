"""`glue-bench train`'s options, made from the job spec's fields: a new field gets its flag by being declared
(spec.py, with its docstring as the help and its default shown), never by a second list here."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path
from typing import Annotated

import typer

from glue_bench.spec import FIELD_KINDS, FIELD_TYPES, FIELDS, field_docs, meta

# Options of the command that are not spec fields.
EXTRA = {
    "spec_file": (Path | None, typer.Option("--spec", help="job spec JSON (flags below override it)")),
    "output_dir": (Path | None, typer.Option(help="results folder (default results/train/<job-id>)")),
    "cache_dir": (Path | None, typer.Option(
        help="tokenisation cache (default GLUE_BENCH_CACHE or ~/.cache/glue-bench)")),
    "force": (bool, typer.Option(help="rerun a done job (its old results are moved aside)")),
    "dry_run": (bool, typer.Option(help="check the inputs, print the job spec and how it would run; write nothing")),
}
EXTRA_DEFAULTS = {"spec_file": None, "output_dir": None, "cache_dir": None, "force": False, "dry_run": False}


def _choices(name: str) -> tuple[str, ...]:
    kind = FIELD_TYPES[name]
    return typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else ()


def spec_options() -> dict[str, tuple]:
    """Field name -> (annotation, typer.Option) for every spec field with a flag."""
    docs = field_docs()
    options = {}
    for name, f in FIELDS.items():
        kind = FIELD_KINDS[name]
        if not meta(f, "cli") or kind is None:
            continue
        flag = "--" + (meta(f, "flag") or name.replace("_", "-"))
        default = f.default if f.default is not dataclasses.MISSING else None
        text = docs.get(name, "")
        if _choices(name):
            text += f" (one of: {', '.join(_choices(name))})"
        if default is not None or f.default is not dataclasses.MISSING:
            text += f" (default {default})" if default is not None else " (default: none)"
        else:
            text += " (required unless --spec gives it)"
        decls = (f"{flag}/--no-{flag[2:]}",) if kind is bool else (flag,)
        options[name] = (kind | None, typer.Option(*decls, help=text, show_default=False))
    return options


def train_command(body):
    """A Typer command with the spec's flags plus EXTRA that calls `body(spec_file, output_dir, cache_dir,
    force, dry_run, **fields)`, a field None when its flag was not given."""
    options = spec_options()

    def command(**kwargs):
        extra = {k: kwargs.pop(k) for k in EXTRA}
        return body(**extra, **kwargs)

    params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=EXTRA_DEFAULTS[name],
                                annotation=Annotated[kind, option]) for name, (kind, option) in EXTRA.items()]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                 annotation=Annotated[kind, option]) for name, (kind, option) in options.items()]
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = body.__doc__
    command.__name__ = "train"
    return command


# The original run_tf_adapter_bert.py's flags that glue-bench names otherwise.
ORIGINAL_FLAGS = {"--casing": "--model", "--saved_models_dir": "--output-dir", "--bottleneck_size": "--bottleneck"}


def translate_original_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """`train` arguments with the original script's spellings (`--learning_rate`, `--casing`, ...) turned into
    glue-bench's; returns (arguments, what was translated). A bottleneck given without a method means houlsby."""
    known = {"--" + (meta(f, "flag") or n.replace("_", "-")) for n, f in FIELDS.items()}
    known |= {"--" + n.replace("_", "-") for n in EXTRA} | {"--spec"}
    out, notes = [], []
    for arg in args:
        name, eq, value = arg.partition("=")
        new = ORIGINAL_FLAGS.get(name) or (name.replace("_", "-") if name.startswith("--") else name)
        if new != name and new in known:
            notes.append(f"{name} -> {new}")
            arg = new + eq + value
        out.append(arg)
    names = {a.partition("=")[0] for a in out}
    if "--bottleneck" in names and "--method" not in names and "--spec" not in names:
        out += ["--method", "houlsby"]
        notes.append("a bottleneck size without --method: --method houlsby")
    return out, notes
