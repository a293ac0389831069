"""The one path of every peft method: a peft config in, the tuner injected in place, hooks for the loop, and peft's
own folder out.

`inject` builds the config's tuner class (what `peft.inject_adapter_in_model` does, which refuses tuners with shared
state such as VeRA and throws away AdaLoRA's rank allocator) and keeps the tuner beside the model, not inside it:
the model's parameter names stay the base model's, so LoRA and (IA)³ checkpoints written before stay readable. What
a tuner needs from the training loop is the method's `MethodHooks` (AdaLoRA's); the loop calls every method's.

`write_peft_folder` writes the trained weights as `PeftModel.save_pretrained` does, from a `PeftModel` built on a
fresh copy of the base model (`peft.get_peft_model`), so peft's own rules apply: VeRA's shared projections are
saved, AdaLoRA's ranks are cut to its final rank pattern, PiSSA's residual base is converted back to a LoRA
update of the original weights (peft's `path_initial_model_for_weight_conversion`; peft's conversion drops the head,
which is put back from its plain save), and the head is saved beside
the adapters (`modules_to_save`). The folder loads with `PeftModel.from_pretrained` onto the original base model.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import uuid
from pathlib import Path

import torch

from glue_bench.errors import GlueBenchError
from glue_bench.train.methods.common import extra_parameters, head_module_names, head_parameters, train_only


class MethodHooks:
    """What a method needs from the training loop; the default needs nothing. The loop calls each of these
    (`glue_bench.train.engine.train_step`, `recipe`): a method declares what it needs by overriding them."""

    def begin(self, total_steps: int) -> None:
        """Before the first step: the job's optimizer steps in all."""

    def loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to back-propagate (a method may add a penalty to the task loss)."""
        return loss

    def before_step(self, step: int) -> None:
        """After the backward pass of an optimizer step, where the gradients are in the parameters (DeepSpeed
        clears them in its step). `step`: optimizer steps done before this one."""

    def after_step(self, step: int) -> None:
        """After the optimizer step."""

    def learning_rate_scale(self, name: str) -> float:
        """The factor on the learning rate of the trainable parameter `name` (LoRA+: its B matrices)."""
        return 1.0

    def state_dict(self) -> dict:
        """State to keep in the resumable checkpoint."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Put `state_dict`'s state back on resume."""


NO_HOOKS = MethodHooks()


def method_hooks(model) -> MethodHooks:
    """The hooks `apply_method` left on the model (none: the default)."""
    return getattr(model, "method_hooks", None) or NO_HOOKS


def on_meta(model) -> bool:
    return any(p.is_meta for p in model.parameters())


def inject(model, spec, config, hooks: type[MethodHooks] | None = None) -> list:
    """Inject `config`'s tuner into `model` in place and return the parameters it trains. The config with what
    saving needs (`saving_fields`) stays on the model for `write_peft_folder`, and the method's hooks (built from
    the tuner) for the loop."""
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

    try:
        tuner_class = PEFT_TYPE_TO_TUNER_MAPPING[config.peft_type]
    except KeyError:
        raise GlueBenchError(f"peft has no tuner for {config.peft_type} (prompt-learning methods do not fit a "
                             "sequence classifier's fine-tuning loop)") from None
    before = {id(p) for p in model.parameters()}  # peft keeps each wrapped projection as its base layer
    try:
        tuner = tuner_class(model, config, adapter_name="default")
    except (ValueError, TypeError, NotImplementedError) as e:
        raise GlueBenchError(f"{spec.method}: peft refused the configuration: {str(e).splitlines()[0]}") from None
    object.__setattr__(model, "peft_folder_config", dataclasses.replace(config, **saving_fields(model, spec)))
    object.__setattr__(model, "method_hooks", hooks(tuner, spec) if hooks else NO_HOOKS)
    return [p for p in model.parameters() if id(p) not in before and p.requires_grad]


def prepare_with(model, spec, config, hooks: type[MethodHooks] | None = None) -> None:
    """A peft method's `prepare`: inject `config` (`inject`), then train what it added, the head and the spec's
    extras (the pooler with `train_pooler`)."""
    added = inject(model, spec, config, hooks)
    train_only(model, itertools.chain(added, head_parameters(model), extra_parameters(model, spec)))


def saving_fields(model, spec) -> dict:
    """What a peft config needs to be saved and loaded back on its own: the task type, the modules saved
    whole beside the adapters (the head, and the pooler when it trains) and the base model."""
    saved = head_module_names(model) + (["pooler"] if spec.train_pooler else [])
    return {"task_type": "SEQ_CLS", "modules_to_save": saved, "base_model_name_or_path": spec.model}


def peft_model_of(base, config):
    """`peft.get_peft_model` of a fresh base model with the folder's config, and its own names of our tensors'
    names (the head under `modules_to_save`)."""
    from peft import get_peft_model
    from peft.utils import ModulesToSaveWrapper

    peft_model = get_peft_model(base, config)
    prefix = "base_model.model."
    wrapped = [name[len(prefix):] for name, module in peft_model.named_modules()
               if isinstance(module, ModulesToSaveWrapper) and name.startswith(prefix)]
    own = set(peft_model.state_dict())

    def name_in_peft(name: str) -> str:
        if prefix + name in own:
            return prefix + name
        for module in wrapped:
            if name.startswith(module + "."):
                return f"{prefix}{module}.modules_to_save.default.{name[len(module) + 1:]}"
        raise GlueBenchError(f"peft folder: no place for the trained tensor {name}")

    return peft_model, name_in_peft


def load_into_peft_model(peft_model, name_in_peft, tensors: dict[str, torch.Tensor]) -> None:
    state = {name_in_peft(name): t for name, t in tensors.items()}
    result = peft_model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise GlueBenchError(f"peft folder: tensors peft does not know: {result.unexpected_keys[:3]}")


def keep_beside_conversion(plain: Path, converted: Path) -> None:
    """peft's PiSSA-to-LoRA conversion keeps only the LoRA tensors: put back what its plain save has beside them (the
    head, under `modules_to_save`), so the folder is the whole trained model's."""
    from safetensors.torch import load_file, save_file

    name = "adapter_model.safetensors"
    tensors = load_file(str(converted / name))
    extra = {k: v for k, v in load_file(str(plain / name)).items() if "lora_" not in k and k not in tensors}
    save_file({**tensors, **extra}, str(converted / name), metadata={"format": "pt"})


def write_peft_folder(module, spec, folder: Path, tensors: dict[str, torch.Tensor], fresh_base) -> Path:
    """peft's folder (`adapter_config.json`, `adapter_model.safetensors`) of the trained `tensors` (the `best` dev
    weights), written by `PeftModel.save_pretrained` on `fresh_base()` (a new copy of the base model with its task
    head) under a temporary name, then renamed into place."""
    config = dataclasses.replace(module.peft_folder_config)
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    scratch = folder.with_name(f".{folder.name}.initial-{uuid.uuid4().hex[:8]}")
    initial = scratch / "initial"  # peft names the loaded initial adapter after the folder: a plain name
    try:
        peft_model, name_in_peft = peft_model_of(fresh_base(), config)
        converts = isinstance(getattr(config, "init_lora_weights", None), str) \
            and config.init_lora_weights.startswith("pissa")
        if converts:  # PiSSA: the initial adapter, to turn the trained one into an update of the original weights
            peft_model.peft_config["default"].init_lora_weights = True
            peft_model.save_pretrained(str(initial))
            peft_model.peft_config["default"].init_lora_weights = config.init_lora_weights
        trained_pattern = getattr(module.peft_folder_config, "rank_pattern", None)
        if trained_pattern:  # AdaLoRA: the ranks the budget ended with
            peft_model.peft_config["default"].rank_pattern = trained_pattern
        load_into_peft_model(peft_model, name_in_peft, tensors)
        if converts:
            peft_model.save_pretrained(str(scratch / "plain"))
            peft_model.save_pretrained(str(tmp), path_initial_model_for_weight_conversion=str(initial))
            keep_beside_conversion(scratch / "plain", tmp)
        else:
            peft_model.save_pretrained(str(tmp))
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return folder
