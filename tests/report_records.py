"""Report records made by hand (no job folders behind them): `rec`, and the records of five configurations at
five budgets that the budget, render, report and submission tests share."""

from __future__ import annotations

from pathlib import Path

from glue_bench.method_config import MethodConfig
from glue_bench.report.collect import JobRecord


def rec(task, method="full", lr=3e-5, seed=1, dev=None, score=None, m=None, epochs=3, path=Path("."),
        trainable=100, base=1000, **kw) -> JobRecord:
    return JobRecord(job_id=f"{task}-{method}-{m}-{lr}-{epochs}-{seed}", path=path, task=task, method=method,
                     bottleneck=m, learning_rate=lr, epochs=epochs, seed=seed, setting="", done=True,
                     dev=dev or {"dev": {"accuracy": score}}, task_score=score, trainable=trainable,
                     base_model=base, **kw)


LORA = MethodConfig("lora", (("rank", 8), ("alpha", 8.0)))
HOULSBY = MethodConfig("houlsby", (("bottleneck", 8),))
# (configuration, trainable with the 10-parameter head, rte score, mrpc score); base model 1000 parameters
CONFIGS = [
    (MethodConfig("full"), 1010, 0.70, 0.85),  # 1000 budget parameters: 100%
    (HOULSBY, 40, 0.68, 0.86),                 # 30: 3%
    (LORA, 15, 0.66, 0.80),                    # 5: 0.5%
    (MethodConfig("bitfit"), 11, 0.60, 0.78),  # 1: 0.1%
    (MethodConfig("ia3"), 11, 0.62, 0.70),     # 1: 0.1%
]


def budget_records():
    out = []
    for config, trainable, rte, mrpc in CONFIGS:
        m = config.size if config.family == "houlsby" else None
        for task, score in (("rte", rte), ("mrpc", mrpc)):
            dev = {"dev": {"accuracy": score}} if task == "rte" else {"dev": {"f1": score, "accuracy": score}}
            out.append(rec(task, config.family, m=m, score=score, dev=dev, trainable=trainable, base=1000, head=10,
                           method_config=config))
    return out
