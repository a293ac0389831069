"""What the methods share: finding the BERT-style output blocks, LayerNorms and the task head."""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from glue_bench.errors import GlueBenchError


def architecture_name(model) -> str:
    archs = getattr(model.config, "architectures", None)
    return f"{type(model).__name__} ({model.config.model_type}{', ' + archs[0] if archs else ''})"


def _is_output_block(block) -> bool:
    return all(isinstance(getattr(block, name, None), kind)
               for name, kind in (("dense", nn.Linear), ("dropout", nn.Dropout), ("LayerNorm", nn.LayerNorm)))


def output_blocks(model) -> Iterator[tuple[str, nn.Module]]:
    """(name, block) for each layer's attention output and feed-forward output, in order.

    A block projects (`dense`), applies `dropout`, then adds the residual and normalises (`LayerNorm`):
    the structure BERT, RoBERTa and ELECTRA share and the one Houlsby adapters are defined on.
    """
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    for i, layer in enumerate(layers or []):
        yield f"layer.{i}.attention.output", layer.attention.output
        yield f"layer.{i}.output", layer.output


def check_architecture(model) -> None:
    """Refuse encoders without the BERT output-block structure, naming the architecture."""
    blocks = [b for _, b in output_blocks(model)] if hasattr(model, "base_model") else []
    if not blocks or not all(_is_output_block(b) for b in blocks):
        raise GlueBenchError(
            f"unsupported architecture {architecture_name(model)}: glue-bench needs a BERT-style encoder "
            "(BERT, RoBERTa, ELECTRA)"
        )


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
