"""Data (glue_bench/train/data.py): a split from the hub or a glue_data folder, the token cache, batches and
subsets."""

import numpy as np
import pytest
from tiny import MINILM

from glue_bench.errors import GlueBenchError
from glue_bench.tasks import TASKS
from glue_bench.train.data import (
    TokenCache,
    eval_batches,
    hub_dataset_to_split,
    load_split,
    rank_micro_batches,
    resolve_data_source,
    subset_rows,
    train_batches,
)


@pytest.fixture(scope="module")
def tokenizer():
    from glue_bench.train.models import load_tokenizer

    return load_tokenizer(MINILM)


def test_hub_unreachable_is_one_line_suggesting_data_dir(monkeypatch):
    import socket

    import datasets

    loads, connections = [], []
    load_dataset = datasets.load_dataset

    def counted_load(*args, **kwargs):
        loads.append(args)
        return load_dataset(*args, **kwargs)

    def no_network(sock, address):
        connections.append(address)
        raise OSError(f"no network in this test ({address})")

    monkeypatch.setattr(datasets, "load_dataset", counted_load)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    with pytest.raises(GlueBenchError) as e:
        load_split(TASKS["rte"], "dev", "hub")
    # fails at once: one attempt, which never reached for the network (offline, the hub client has nothing to
    # retry; online, its retries take about 23 s)
    assert len(loads) == 1 and connections == []
    assert "cannot load nyu-mll/glue/rte from the Hugging Face hub" in str(e.value)
    assert "--data-dir" in str(e.value) and "\n" not in str(e.value)


def test_hub_format_dataset_maps_to_the_same_columns_as_glue_data(real_glue):
    import datasets

    # A dataset with the hub's features (ClassLabel labels, idx) built locally from the real RTE dev file.
    local = load_split(TASKS["rte"], "dev", str(real_glue))
    features = datasets.Features({"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
                                  "idx": datasets.Value("int32")})
    hub_like = datasets.Dataset.from_dict(local.columns, features=features)
    converted = hub_dataset_to_split(TASKS["rte"], hub_like)
    assert converted.columns == local.columns
    assert converted.source["kind"] == "hub"


def test_data_source_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("GLUE_DATA_DIR", raising=False)
    assert resolve_data_source("auto") == "hub"
    monkeypatch.setenv("GLUE_DATA_DIR", str(tmp_path))
    assert resolve_data_source("auto") == str(tmp_path.resolve())
    assert resolve_data_source("hub") == "hub"
    with pytest.raises(GlueBenchError, match="does not exist"):
        resolve_data_source(str(tmp_path / "nope"))


def test_token_cache_tokenizes_once_and_is_shared(tmp_path, real_glue, tokenizer):
    task = TASKS["mrpc"]
    first = TokenCache(tmp_path)
    enc = first.encoded(task, "dev", str(real_glue), tokenizer, 64)
    assert (first.hits, first.misses) == (0, 1)
    assert len(enc) == 408 and enc.lengths.max() <= 64
    second = TokenCache(tmp_path)
    again = second.encoded(task, "dev", str(real_glue), tokenizer, 64)
    assert (second.hits, second.misses) == (1, 0)
    assert again.input_ids == enc.input_ids and (again.labels == enc.labels).all()
    assert enc.token_type_ids is not None and max(enc.token_type_ids[0]) == 1  # sentence pair
    second.encoded(task, "dev", str(real_glue), tokenizer, 128)  # another max length: another entry
    assert second.misses == 1 and len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_token_cache_hit_does_not_parse_the_file(tmp_path, real_glue, tokenizer, monkeypatch):
    import glue_bench.train.data

    task = TASKS["rte"]
    first = TokenCache(tmp_path / "cache").encoded(task, "dev", str(real_glue), tokenizer, 32)

    def no_parsing(*args):
        raise AssertionError("a cache hit parsed the TSV file")
    monkeypatch.setattr(glue_bench.train.data, "read_split", no_parsing)
    cache = TokenCache(tmp_path / "cache")
    again = cache.encoded(task, "dev", str(real_glue), tokenizer, 32)
    assert cache.hits == 1 and again.source == first.source and again.source["dropped_rows"] == 0
    assert (again.ids == first.ids).all()
    changed = tmp_path / "glue"  # another file (one row fewer): another entry, parsed
    (changed / "RTE").mkdir(parents=True)
    lines = (real_glue / "RTE" / "dev.tsv").read_text().splitlines(keepends=True)
    (changed / "RTE" / "dev.tsv").write_text("".join(lines[:-1]))
    with pytest.raises(AssertionError, match="parsed"):
        cache.encoded(task, "dev", str(changed), tokenizer, 32)


def test_concurrent_publishers_leave_one_complete_entry(tmp_path, real_glue, tokenizer):
    from concurrent.futures import ThreadPoolExecutor

    caches = [TokenCache(tmp_path) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: c.encoded(TASKS["rte"], "dev", str(real_glue), tokenizer, 32), caches))
    assert all(r.input_ids == results[0].input_ids for r in results)
    assert len(list(tmp_path.iterdir())) == 1


def test_train_batches_are_a_pure_function_covering_every_example():
    lengths = np.random.default_rng(0).integers(5, 100, size=1000)
    a = train_batches(lengths, 32, seed=1, epoch=0, group_by_length=True)
    assert [b.tolist() for b in a] == [b.tolist() for b in train_batches(lengths, 32, 1, 0, True)]
    assert sorted(np.concatenate(a).tolist()) == list(range(1000))
    assert [b.tolist() for b in a] != [b.tolist() for b in train_batches(lengths, 32, 1, 1, True)]
    # grouping by length cuts padding: mean (max length in batch - length) is far smaller than shuffled
    def waste(batches):
        return np.mean([lengths[b].max() - lengths[b].mean() for b in batches])
    assert waste(a) < 0.3 * waste(train_batches(lengths, 32, 1, 0, group_by_length=False))


def test_rank_micro_batches_split_a_global_batch_without_overlap():
    batch = np.arange(32)
    parts = [rank_micro_batches(batch, 2, r, 2) for r in range(2)]
    assert [len(p) for p in parts] == [2, 2]
    assert sorted(np.concatenate([m for p in parts for m in p]).tolist()) == list(range(32))
    assert rank_micro_batches(np.arange(3), 2, 0, 2) == []  # too small to give every rank a micro-batch


def test_eval_shards_are_disjoint_length_sorted_and_complete():
    lengths = np.array([5, 50, 7, 30, 9, 12, 44])
    shards = [np.concatenate(eval_batches(lengths, 2, r, 2)) for r in range(2)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(7))
    assert not set(shards[0]) & set(shards[1])
    assert list(lengths[shards[0]]) == sorted(lengths[shards[0]], reverse=True)


def test_subsets_are_random_reproducible_and_in_file_order():
    rows = subset_rows(100, 10, seed=0)
    assert len(set(rows)) == 10 and list(rows) == sorted(rows) and (rows == subset_rows(100, 10, 0)).all()
    assert not (rows == np.arange(10)).all()
    assert (subset_rows(5, 10, 0) == np.arange(5)).all()

