"""Loading models and tokenizers (glue_bench/train/models.py) when the hub cannot be reached."""

import pytest

from glue_bench.errors import GlueBenchError
from glue_bench.tasks import TASKS


def test_unreachable_model_hub_is_one_line():
    from glue_bench.train.models import load_model, load_tokenizer

    with pytest.raises(GlueBenchError) as e:
        load_model("bert-base-uncased", TASKS["rte"])
    assert str(e.value).startswith("cannot load model 'bert-base-uncased':") and "\n" not in str(e.value)
    with pytest.raises(GlueBenchError, match="cannot load the tokenizer of 'bert-base-uncased'"):
        load_tokenizer("bert-base-uncased")


def test_an_unreachable_hub_fails_at_once_instead_of_retrying(tmp_path):
    import os
    import subprocess
    import sys

    code = ("from glue_bench.train.models import load_tokenizer\n"
            "try:\n    load_tokenizer('bert-base-uncased')\nexcept Exception as e:\n    print('ERR', e)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))  # nothing listens on port 9
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert "ERR cannot load the tokenizer of 'bert-base-uncased'" in proc.stdout, proc.stdout + proc.stderr
    assert "Retry" not in proc.stderr, proc.stderr  # the hub client's five retries (about 45 s) are skipped
    assert "hub is unreachable" in proc.stderr
