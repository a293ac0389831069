"""What the peft methods share: which projections they adapt, and peft's own folder format for the result.

Target names are Linear modules relative to an encoder layer: an entry matches a module whose name in its
layer equals the entry (`attention.output.dense`, `output.dense`), and an entry without a dot also matches
the last part of the name (`query` matches `attention.self.query`; `dense` matches all three projections
called dense). peft itself gets the full names of the matched modules, so it adapts exactly those: its
suffix rule would let `output.dense` take the attention output's projection too.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from glue_bench.errors import GlueBenchError
from glue_bench.method_config import target_entries
from glue_bench.train.methods.common import architecture_name, head_module_names


def layer_linears(model) -> list[tuple[str, str]]:
    """(full name, name relative to its layer) of every Linear module inside the encoder's layers."""
    prefix = f"{model.base_model_prefix}.encoder.layer."
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name.startswith(prefix):
            found.append((name, name[len(prefix):].split(".", 1)[1]))
    return found


def resolve_targets(model, family: str, target_modules: str | None) -> dict[str, list[str]]:
    """Entry -> the full module names it matches; an entry that matches nothing is an error."""
    linears = layer_linears(model)
    resolved = {}
    for entry in target_entries(family, target_modules):
        names = [full for full, rel in linears
                 if rel == entry or ("." not in entry and rel.rsplit(".", 1)[-1] == entry)]
        if not names:
            known = ", ".join(sorted({rel for _, rel in linears}))
            raise GlueBenchError(f"target_modules: {entry!r} matches no projection of {architecture_name(model)}"
                                 f" (names in a layer: {known})")
        resolved[entry] = names
    return resolved


def inject(model, spec, config) -> list:
    """Inject `config`'s peft layers into `model` in place and return the parameters peft added. The config
    with what saving needs (`saving_fields`) stays on the model for train to write peft/ at the end."""
    import dataclasses

    from peft import inject_adapter_in_model

    before = {id(p) for p in model.parameters()}  # peft keeps each wrapped projection as its base layer
    model.peft_folder_config = dataclasses.replace(config, **saving_fields(model, spec))
    inject_adapter_in_model(config, model)
    return [p for p in model.parameters() if id(p) not in before]


def saving_fields(model, spec) -> dict:
    """What a peft config needs to be saved and loaded back on its own: the task type, the modules saved
    whole beside the adapters (the head, and the pooler when it trains) and the base model."""
    saved = head_module_names(model) + (["pooler"] if spec.train_pooler else [])
    return {"task_type": "SEQ_CLS", "modules_to_save": saved, "base_model_name_or_path": spec.model}


def write_peft_folder(config, folder: Path, tensors: dict) -> Path:
    """`adapter_config.json` + `adapter_model.safetensors` as `PeftModel.save_pretrained` writes them, from
    the trained tensors (the `best` dev weights): loadable with `peft.PeftModel.from_pretrained(base, folder)`
    on the task's `AutoModelForSequenceClassification`."""
    import os
    import shutil
    import uuid

    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    renamed = {"base_model.model." + name.replace(".default.", ".").removesuffix(".default"): t.contiguous()
               for name, t in tensors.items()}
    save_file(renamed, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
    config_dict = config.to_dict()
    for key, value in config_dict.items():  # sets are not JSON
        if isinstance(value, set):
            config_dict[key] = sorted(value)
    (tmp / "adapter_config.json").write_text(json.dumps(config_dict, indent=2, sort_keys=True) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    os.rename(tmp, folder)
    return folder
