"""Every shipped sweep file plans (`--dry-run --skip-missing`: the hub models are not on this machine, their
configurations are built in; ../shared/glue_data lacks some training files), and the published recipes' counts
printed by `plan --estimate` are the hand-computed ones, beside the papers'."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT, glue_bench

SWEEPS = sorted((ROOT / "jobs").glob("*.yaml"))


@pytest.mark.parametrize("sweep_file", SWEEPS, ids=lambda p: p.stem)
def test_every_shipped_sweep_file_plans(sweep_file: Path, tmp_path, real_glue):
    proc = glue_bench("plan", str(sweep_file), "--dry-run", "--skip-missing", "--jobs-dir", str(tmp_path / "jobs"),
                      "--results-dir", str(tmp_path / "results"), env={"GLUE_DATA_DIR": str(real_glue)})
    assert re.search(r"\[dry run, nothing written\] \d+ jobs in", proc.stdout), proc.stdout
    assert not (tmp_path / "jobs").exists()


def counts(sweep: str, tmp_path: Path, real_glue: Path) -> dict[str, tuple[int, str]]:
    """Configuration label -> (our count as the papers count, the published cell) from `plan --estimate`."""
    proc = glue_bench("plan", str(ROOT / "jobs" / f"{sweep}.yaml"), "--dry-run", "--skip-missing", "--estimate",
                      "--gpu-type", "h100", "--jobs-dir", str(tmp_path / "jobs"), env={"GLUE_DATA_DIR": str(real_glue)})
    table = proc.stdout.split("trainable parameters (meta device")[1]
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].strip(): (int(cells[1].replace(",", "")), cells[3].strip()) for cells in rows[1:]}


def test_lora_vera_and_fourierft_on_roberta_base_count_as_the_papers(tmp_path, real_glue):
    lora = counts("lora-roberta-base", tmp_path, real_glue)
    assert lora["lora r=8 a=8"][0] == 2 * 8 * 768 * 2 * 12 == 294_912  # A and B of q and v, 12 layers
    assert lora["lora r=8 a=8 from=mnli"][0] == 294_912
    assert lora["lora r=8 a=8"][1] == "0.3M (lora-2021-roberta-base: LoRA (0.3M))"
    other = counts("vera-fourierft-roberta-base", tmp_path, real_glue)
    assert other["vera r=1024"][0] == 12 * 2 * (1024 + 768) == 43_008  # d (r) and b (d_out) per projection
    assert other["fourierft n=1000"][0] == 12 * 2 * 1000 == 24_000
    assert "0.043M" in other["vera r=1024"][1] and "0.024M" in other["fourierft n=1000"][1]


def test_the_deberta_v3_base_table_counts_beside_the_papers(tmp_path, real_glue):
    found = counts("deberta-v3-base", tmp_path, real_glue)
    every = "t=query,key,value,attention.output.dense,intermediate.dense,output.dense"
    per_layer = 4 * (768 + 768) + 2 * (768 + 3072)  # in + out of q, k, v, o, f1, f2
    assert found[f"lora r=8 a=8 {every}"][0] == 12 * 8 * per_layer == 1_327_104
    assert found[f"hra r=8 {every}"][0] == 12 * 8 * (5 * 768 + 3072) == 663_552  # r vectors of the input size
    assert found[f"dora r=8 a=8 {every}"][0] == 1_327_104 + 12 * (5 * 768 + 3072)  # + a magnitude per output
    assert found["pfeiffer m=64"][0] == 12 * (768 * 64 + 64 + 64 * 768 + 768) == 1_189_632
    assert found["adalora r=8 r0=12 a=8"][0] == 12 * (12 * per_layer + 6 * 12)  # P, Q and E at the start
    assert found["full"][1].startswith("184M") and found["bitfit"][1].startswith("0.1M")
    assert found["vera r=1024"][1] == "-"  # no published row for VeRA on DeBERTa-v3-base


@pytest.mark.parametrize("model,published", [
    ("microsoft/deberta-v3-base", 184e6), ("microsoft/deberta-v3-large", 435e6), ("answerdotai/ModernBERT-base", 149e6),
    ("answerdotai/ModernBERT-large", 395e6), ("roberta-base", 125e6)])
def test_built_in_configurations_have_the_published_sizes(model, published):
    """No download: the encoder built from its built-in configuration on the meta device has the size its model
    card gives."""
    import torch
    from transformers import AutoModel

    from glue_bench.train.models import model_config

    with torch.device("meta"):
        encoder = AutoModel.from_config(model_config(model))
    assert sum(p.numel() for p in encoder.parameters()) == pytest.approx(published, rel=0.005)
