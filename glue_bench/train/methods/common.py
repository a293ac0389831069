"""What the methods share: an encoder's layers (where its family says they are), its LayerNorms and the task
head."""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from glue_bench.encoders import Encoder, encoder_for
from glue_bench.errors import GlueBenchError


def architecture_name(model) -> str:
    archs = getattr(model.config, "architectures", None)
    return f"{type(model).__name__} ({model.config.model_type}{', ' + archs[0] if archs else ''})"


def encoder_of(model) -> Encoder:
    """The model's encoder family (`glue_bench.encoders`), or a one-line error naming the supported ones."""
    config = getattr(model, "config", None)
    return encoder_for(getattr(config, "model_type", type(model).__name__), architecture_name(model)
                       if config is not None else type(model).__name__)


def submodule(root: nn.Module, path: str) -> nn.Module:
    for part in path.split("."):
        root = getattr(root, part)
    return root


def set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(submodule(root, parent) if parent else root, name, module)


def encoder_layers(model) -> list[nn.Module]:
    """The layers of the base encoder, in order (where `encoder_of(model).layers` says they are)."""
    return list(submodule(model.base_model, encoder_of(model).layers))


def layers_prefix(model) -> str:
    """The full name prefix of the layers (`bert.encoder.layer.`, `model.layers.`)."""
    return f"{model.base_model_prefix}.{encoder_of(model).layers}."


def check_architecture(model) -> None:
    """Refuse encoders of an undeclared family, and models whose layers lack the modules their family declares."""
    if not hasattr(model, "base_model"):
        raise GlueBenchError(f"unsupported architecture {type(model).__name__}: not a transformers model")
    encoder = encoder_of(model)
    try:
        layers = encoder_layers(model)
        for layer in layers:
            for path in encoder.adapter_after:
                submodule(layer, path)
    except AttributeError as e:
        raise GlueBenchError(f"unsupported architecture {architecture_name(model)}: its layers do not have the "
                             f"{encoder.display} layout ({e})") from None
    if not layers:
        raise GlueBenchError(f"unsupported architecture {architecture_name(model)}: no encoder layers")


def head_parameters(model) -> Iterator[nn.Parameter]:
    """The task head: every parameter outside the base encoder (BERT's pooler is inside it)."""
    prefix = model.base_model_prefix + "."
    for name, p in model.named_parameters():
        if not name.startswith(prefix):
            yield p


def layernorm_parameters(model) -> Iterator[nn.Parameter]:
    """Every LayerNorm of the base encoder, the embeddings' included."""
    for module in model.base_model.modules():
        if isinstance(module, nn.LayerNorm):
            yield from module.parameters()


def train_only(model, params: Iterator[nn.Parameter]) -> None:
    """Freeze everything, then unfreeze `params`."""
    chosen = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)


def pooler_parameters(model) -> list[nn.Parameter]:
    """BERT's pooler (dense + tanh over the first token); an error for encoders without one."""
    pooler = getattr(model.base_model, "pooler", None)
    if pooler is None:
        raise GlueBenchError(f"train_pooler: {architecture_name(model)} has no pooler (its classification head "
                             "has a dense layer of its own, which trains with the head)")
    return list(pooler.parameters())


def extra_parameters(model, spec) -> list[nn.Parameter]:
    """What a method trains on top of its own parameters because of the spec: the pooler with `train_pooler`."""
    return pooler_parameters(model) if spec.train_pooler else []


def head_module_names(model) -> list[str]:
    """Top-level modules of the task head (`classifier`): what a peft folder saves beside the adapters."""
    return [name for name, module in model.named_children()
            if name != model.base_model_prefix and any(True for _ in module.parameters())]
