"""Each peft method on the real model: all-MiniLM-L6-v2 on SST-2 with the settings of the real-model checks
(`tests/test_method_accuracy.py`: 2,000 random training rows, 1 epoch, batch 32, max length 128, warmup 10%, seed
42, the whole dev set), one `glue-bench train` per method, against the majority class (444 of 872 dev rows).

    python -m benchmarks methods --work /tmp/methods --out benchmarks/results-methods-sst2.json

The pooler trains with every method (all-MiniLM-L6-v2's was never trained; docs/methods.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
COMMON = ("--model", MODEL, "--task", "sst2", "--max-train-samples", "2000", "--epochs", "1", "--batch-size", "32",
          "--max-seq-length", "128", "--warmup-ratio", "0.1", "--seed", "42", "--no-predict-test", "--train-pooler",
          "--wandb", "disabled")
MAJORITY = 444 / 872
RUNS = {
    "dora r=8": ("--method", "dora", "--rank", "8", "--learning-rate", "1e-3"),
    "pissa r=8": ("--method", "pissa", "--rank", "8", "--learning-rate", "5e-4"),
    "adalora r=8 (from 12)": ("--method", "adalora", "--rank", "8", "--learning-rate", "1e-3", "--adalora-tinit", "6",
                              "--adalora-tfinal", "12"),
    "vera r=256": ("--method", "vera", "--rank", "256", "--learning-rate", "1e-2", "--head-learning-rate", "3e-3"),
    "fourierft n=1000": ("--method", "fourierft", "--n-frequency", "1000", "--learning-rate", "2e-2",
                         "--head-learning-rate", "3e-3"),
    "boft b=8": ("--method", "boft", "--block-size", "8", "--learning-rate", "3e-3"),
    "oft b=16": ("--method", "oft", "--block-size", "16", "--learning-rate", "3e-3"),
    "hra r=8": ("--method", "hra", "--rank", "8", "--learning-rate", "3e-3"),
    "lntuning": ("--method", "lntuning", "--learning-rate", "1e-2"),
    "lora+ r=8 (ratio 16)": ("--method", "lora", "--rank", "8", "--learning-rate", "1e-3", "--loraplus-ratio", "16"),
    "peft LOHA r=8": ("--method", "peft", "--peft-type", "LOHA", "--learning-rate", "3e-3"),
}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks methods", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the jobs")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/glue_data"))
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--only", action="append", default=[], help="run only these (names as in the table)")
    args = parser.parse_args(argv)
    exe = Path(sys.executable).with_name("glue-bench")
    results = json.loads(args.out.read_text()) if args.out and args.out.is_file() else {}
    for name, flags in RUNS.items():
        if args.only and name not in args.only:
            continue
        folder = args.work / name.replace(" ", "_").replace("=", "").replace("(", "").replace(")", "")
        start = time.time()
        proc = subprocess.run([str(exe), "train", *COMMON, *flags, "--data-dir", str(args.data_dir.resolve()),
                               "--output-dir", str(folder), "--force"], capture_output=True, text=True)
        if proc.returncode != 0:
            results[name] = {"flags": list(flags), "error": proc.stderr.strip().splitlines()[-1:]}
        else:
            metrics = json.loads((folder / "metrics.json").read_text())
            accuracy = metrics["dev"]["dev"]["accuracy"]
            results[name] = {"flags": list(flags), "accuracy": accuracy, "majority": MAJORITY,
                             "above_majority_points": 100 * (accuracy - MAJORITY),
                             "trainable": metrics["parameters"]["trainable"],
                             "wall_seconds": round(time.time() - start, 1)}
        print(name, json.dumps(results[name]), flush=True)
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


def table(results: dict) -> str:
    lines = ["| method | flags | trainable (with head and pooler) | SST-2 dev accuracy | vs majority |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | `{' '.join(r['flags'])}` | | failed: {' '.join(r['error'])} | |")
            continue
        lines.append(f"| {name} | `{' '.join(r['flags'][2:])}` | {r['trainable']:,} | {r['accuracy']:.3f} | "
                     f"+{r['above_majority_points']:.1f} |")
    return "\n".join(lines)
