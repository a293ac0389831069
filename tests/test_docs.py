"""The documentation agrees with what ships: the demo sweep as README.md and docs/ describe it."""

from pathlib import Path


def test_docs_describe_the_shipped_demo():
    import yaml

    root = Path(__file__).resolve().parents[1]
    demo = yaml.safe_load((root / "jobs" / "demo.yaml").read_text())
    sweeps_md = (root / "docs" / "sweeps.md").read_text()
    readme = (root / "README.md").read_text()
    assert demo["tasks"] == ["sst2", "stsb"] and "on SST-2 and STS-B" in " ".join(readme.split())
    assert list(demo["methods"]) == ["full", "houlsby", "lora"] and "jobs/demo.yaml" in sweeps_md
    assert all(len(m["learning_rate"]) == 2 for m in demo["methods"].values())  # each chooses its rate on dev
    assert "`submission.json`)" not in (root / "docs" / "report.md").read_text()
    readme = (root / "README.md").read_text()
    # the demo's time and table are written by scripts/demo.py between markers, not typed
    assert readme.count("<!-- demo:time -->") == 1 and readme.count("<!-- demo:table -->") == 1
    assert "minutes" not in (root / "jobs" / "demo.yaml").read_text().splitlines()[0]
