"""(IA)³ (Liu et al. 2022) through `peft`: learned vectors that rescale keys, values and the feed-forward
activations.

The paper's targets: the attention keys and values (their outputs are scaled) and the feed-forward block's
intermediate activations (the input of its second projection, `output.dense`, is scaled). peft's own BERT
mapping matches the attention output projection too (its `output.dense` suffix), and it has no mapping
for ELECTRA; glue-bench always passes the paper's modules by full name, the same for BERT, RoBERTa and
ELECTRA. The vectors start at one, so the model starts as the pretrained one. Trained: the vectors and the
task head (plus the pooler with `train_pooler`).
"""

from __future__ import annotations

import itertools

from glue_bench.method_config import FEEDFORWARD_TARGETS
from glue_bench.methods.common import extra_parameters, head_parameters, train_only
from glue_bench.methods.targets import layer_linears, resolve_targets
from glue_bench.methods.targets import saving_fields as _saving


def peft_config(model, spec, saving: bool = False):
    """The peft `IA3Config` of a spec: target modules by full name, the feed-forward ones among them."""
    from peft import IA3Config

    resolved = resolve_targets(model, "ia3", spec.target_modules)
    names = sorted(itertools.chain.from_iterable(resolved.values()))
    relative = dict(layer_linears(model))
    feedforward = [n for n in names if relative[n] in FEEDFORWARD_TARGETS]
    return IA3Config(target_modules=names, feedforward_modules=feedforward,
                     **_saving(model, spec) if saving else {})


def prepare(model, spec) -> None:
    from peft import inject_adapter_in_model

    model.peft_folder_config = peft_config(model, spec, saving=True)  # what train writes to peft/ at the end
    inject_adapter_in_model(peft_config(model, spec), model)
    scales = (p for name, p in model.named_parameters() if ".ia3_l." in name)
    train_only(model, itertools.chain(scales, head_parameters(model), extra_parameters(model, spec)))
