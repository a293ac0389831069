"""Encoder families: where each method goes in each architecture, declared as data (no torch).

A family is keyed by the `model_type` of a model's config. It says where the layers are, whether a layer
normalises after its residual adds (post-LN: BERT, RoBERTa, ELECTRA, DeBERTa) or before its sublayers (pre-LN:
ModernBERT), after which module of a layer each bottleneck adapter takes its input, and what each of BERT's
projection names is called in this family. The method code reads these entries; it has no branch per family.

Target names: a peft method's `target_modules` are written with BERT's names relative to a layer (`query`,
`value`, `attention.output.dense`, `intermediate.dense`, `output.dense`) or with the family's own; `names`
translates the first. A family that fuses several projections into one module (ModernBERT's `Wqkv`) can only
adapt them together: asking for some but not all of a fused group is refused (`fused`).

The built-in configurations (`BUILT_IN_CONFIGS`) are the published `config.json` values of common hub models,
so `plan --estimate`, `calibrate` and plan-time checks work on a machine that has never downloaded them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from glue_bench.errors import GlueBenchError

BERT_NAMES = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")
"""The projections of a layer under BERT's names: the roles every family maps."""


@dataclass(frozen=True, slots=True)
class Encoder:
    """One encoder family's layout: what the methods need to know to place themselves."""

    family: str
    """The family's name in docs and errors (`bert`, `deberta-v2`, `modernbert`)."""
    model_types: tuple[str, ...]
    """`config.model_type` values of this layout."""
    display: str
    """Name in messages."""
    layers: str
    """Path of the layer list inside the base model (`encoder.layer`, `layers`)."""
    norm: str
    """`post`: LayerNorm(x + sublayer(x)) (the original Transformer); `pre`: x + sublayer(LayerNorm(x))."""
    adapter_after: tuple[str, str]
    """(attention, feed-forward): the module of a layer whose output a Houlsby adapter takes, before the residual
    add. Post-LN: the output blocks' dropout (after the projection, before the add and LayerNorm); pre-LN: the
    sublayer's last module (its output goes straight into the residual add)."""
    pfeiffer_block: str | None
    """Post-LN: the feed-forward output block (its `dense`, `dropout` and `LayerNorm`) the Pfeiffer adapter is
    built around. None for pre-LN: the Pfeiffer adapter sits where the feed-forward Houlsby adapter does."""
    names: dict[str, str] = field(default_factory=dict)
    """BERT's projection name -> this family's (absent: the same name)."""
    fused: tuple[tuple[str, ...], ...] = ()
    """Groups of BERT's names that this family computes with one module."""
    default_targets: dict[str, str] = field(default_factory=dict)
    """Per peft method, the `target_modules` used when none are given (absent: the method's BERT default)."""
    bias_keys: tuple[str, ...] = ()
    """Config keys that switch the encoder's biases on; when all are false it has no bias to train (BitFit)."""

    def name_of(self, bert_name: str) -> str:
        return self.names.get(bert_name, bert_name)

    def has_biases(self, config: dict) -> bool:
        return not self.bias_keys or any(config.get(key, True) for key in self.bias_keys)

    def target_entries(self, method: str, target_modules: str | None) -> list[str]:
        """A peft method's target entries in this family's names (BERT's translated), with the family's default
        when none are given; asking for part of a fused projection is a one-line error."""
        from glue_bench.method_config import target_entries

        asked = target_entries(method, target_modules or self.default_targets.get(method))
        for group in self.fused:
            chosen = [name for name in group if name in asked]
            if chosen and len(chosen) < len(group):
                fused = self.name_of(group[0])
                raise GlueBenchError(
                    f"target_modules {','.join(asked)}: {self.display} computes {', '.join(group)} with one "
                    f"projection ({fused}); {method} can adapt all of them ({','.join(group)} or "
                    f"{fused.rsplit('.', 1)[-1]}) or none of them")
        return list(dict.fromkeys(self.name_of(entry) for entry in asked))


BERT = Encoder("bert", ("bert", "roberta", "xlm-roberta", "electra", "camembert"), "BERT-style",
               layers="encoder.layer", norm="post",
               adapter_after=("attention.output.dropout", "output.dropout"), pfeiffer_block="output")
DEBERTA_V2 = Encoder("deberta-v2", ("deberta-v2",), "DeBERTa-v2/v3", layers="encoder.layer", norm="post",
                     adapter_after=("attention.output.dropout", "output.dropout"), pfeiffer_block="output",
                     names={"query": "attention.self.query_proj", "key": "attention.self.key_proj",
                            "value": "attention.self.value_proj"})
MODERNBERT = Encoder("modernbert", ("modernbert",), "ModernBERT", layers="layers", norm="pre",
                     adapter_after=("attn.out_drop", "mlp.Wo"), pfeiffer_block=None,
                     names={"query": "attn.Wqkv", "key": "attn.Wqkv", "value": "attn.Wqkv",
                            "attention.output.dense": "attn.Wo", "intermediate.dense": "mlp.Wi",
                            "output.dense": "mlp.Wo"},
                     fused=(("query", "key", "value"),),
                     default_targets={"lora": "qkv", "dora": "qkv", "pissa": "qkv", "adalora": "qkv", "vera": "qkv",
                                      "fourierft": "qkv", "boft": "qkv", "oft": "qkv", "hra": "qkv", "peft": "qkv",
                                      "ia3": "query,key,value,output.dense"},
                     bias_keys=("attention_bias", "mlp_bias", "norm_bias"))
ENCODERS: dict[str, Encoder] = {e.family: e for e in (BERT, DEBERTA_V2, MODERNBERT)}
BY_MODEL_TYPE: dict[str, Encoder] = {t: e for e in ENCODERS.values() for t in e.model_types}


def encoder_for(model_type: str, architecture: str | None = None) -> Encoder:
    """The family of a `model_type`, or a one-line error naming the supported ones."""
    try:
        return BY_MODEL_TYPE[model_type]
    except KeyError:
        supported = ", ".join(BY_MODEL_TYPE)
        raise GlueBenchError(f"unsupported architecture {architecture or model_type}: glue-bench places its methods in "
                             f"{supported} encoders") from None


def check_fits(config: dict, spec) -> None:
    """Refuse, in one line and before anything runs, a method that cannot work on this encoder as configured: BitFit
    without biases, peft targets that a fused projection cannot give."""
    from glue_bench.method_config import FAMILIES

    encoder = encoder_for(str(config.get("model_type")))
    if spec.method == "bitfit" and not encoder.has_biases(config):
        keys = ", ".join(encoder.bias_keys)
        raise GlueBenchError(f"bitfit: this {encoder.display} has no bias in its encoder ({keys} are false in its "
                             "config): nothing but the head would train")
    if "target_modules" in FAMILIES[spec.method].params:
        encoder.target_entries(spec.method, spec.target_modules)


def _deberta_v3(hidden: int, layers: int, heads: int) -> dict:
    return {"model_type": "deberta-v2", "vocab_size": 128100, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "intermediate_size": 4 * hidden, "hidden_act": "gelu",
            "max_position_embeddings": 512, "type_vocab_size": 0, "relative_attention": True,
            "position_buckets": 256, "max_relative_positions": -1, "norm_rel_ebd": "layer_norm",
            "share_att_key": True, "pos_att_type": ["p2c", "c2p"], "position_biased_input": False,
            "layer_norm_eps": 1e-7, "pad_token_id": 0, "pooler_hidden_size": hidden, "pooler_dropout": 0,
            "pooler_hidden_act": "gelu"}


def _modernbert(hidden: int, layers: int, heads: int, intermediate: int) -> dict:
    return {"model_type": "modernbert", "vocab_size": 50368, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "intermediate_size": intermediate, "hidden_activation": "gelu",
            "max_position_embeddings": 8192, "global_attn_every_n_layers": 3, "local_attention": 128,
            "norm_eps": 1e-5, "norm_bias": False, "attention_bias": False, "mlp_bias": False,
            "classifier_pooling": "mean", "pad_token_id": 50283, "bos_token_id": 50281, "eos_token_id": 50282,
            "cls_token_id": 50281, "sep_token_id": 50282}


def _bert(kind: str, vocab: int, hidden: int, layers: int, heads: int) -> dict:
    extra = {"max_position_embeddings": 514, "type_vocab_size": 1, "pad_token_id": 1, "layer_norm_eps": 1e-5} \
        if kind == "roberta" else {"max_position_embeddings": 512, "type_vocab_size": 2}
    return {"model_type": kind, "vocab_size": vocab, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "intermediate_size": 4 * hidden, **extra}


BUILT_IN_CONFIGS: dict[str, dict] = {
    "bert-base-uncased": _bert("bert", 30522, 768, 12, 12), "bert-base-cased": _bert("bert", 28996, 768, 12, 12),
    "bert-large-uncased": _bert("bert", 30522, 1024, 24, 16), "bert-large-cased": _bert("bert", 28996, 1024, 24, 16),
    "roberta-base": _bert("roberta", 50265, 768, 12, 12), "roberta-large": _bert("roberta", 50265, 1024, 24, 16),
    "microsoft/deberta-v3-base": _deberta_v3(768, 12, 12), "microsoft/deberta-v3-large": _deberta_v3(1024, 24, 16),
    "answerdotai/ModernBERT-base": _modernbert(768, 22, 12, 1152),
    "answerdotai/ModernBERT-large": _modernbert(1024, 28, 16, 2624),
}
"""Published config.json values of common hub models (hub id -> config; RoBERTa and BERT also by their short
names under FacebookAI/ and google-bert/)."""
for _short in ("roberta-base", "roberta-large"):
    BUILT_IN_CONFIGS[f"FacebookAI/{_short}"] = BUILT_IN_CONFIGS[_short]
for _short in ("bert-base-uncased", "bert-base-cased", "bert-large-uncased", "bert-large-cased"):
    BUILT_IN_CONFIGS[f"google-bert/{_short}"] = BUILT_IN_CONFIGS[_short]


def built_in_config(model: str) -> dict | None:
    return BUILT_IN_CONFIGS.get(model)


def config_dict(model: str) -> dict | None:
    """A model's config.json as a mapping, without torch or the network: a model folder's file, else a built-in
    one, else the local hub cache's copy; None when none of them has it."""
    from glue_bench.model_source import in_hub_cache, is_model_path, resolve_model

    path = resolve_model(model)
    candidate = Path(path).expanduser() / "config.json"
    if is_model_path(path):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except (OSError, ValueError):
                return None
        return None
    if model in BUILT_IN_CONFIGS:
        return BUILT_IN_CONFIGS[model]
    if in_hub_cache(model):
        from huggingface_hub import try_to_load_from_cache

        try:
            return json.loads(Path(try_to_load_from_cache(model, "config.json")).read_text())
        except (OSError, ValueError, TypeError):
            return None
    return None
