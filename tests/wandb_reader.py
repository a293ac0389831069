"""Read an offline wandb run back from its `.wandb` log (no network, no wandb internals beyond the protobuf).

The log is a 7-byte header (`:W&B`, magic 0xBEE1, version 0) followed by 32 KiB blocks of records
`[crc32c:u32][length:u16][type:u8] payload` (1 full, 2 first, 3 middle, 4 last); each assembled payload is a
`wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK, HEADER = 32768, 7


def records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<HB", data[4:7]) == (0xBEE1, 0)
    offset, pending = 7, b""
    while offset + HEADER <= len(data):
        if BLOCK - offset % BLOCK < HEADER:
            offset += BLOCK - offset % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[offset:offset + HEADER])
        offset += HEADER
        if kind == 0 and length == 0:
            offset += (BLOCK - offset % BLOCK) % BLOCK
            continue
        chunk, offset = data[offset:offset + length], offset + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def _put(target: dict, item) -> None:
    value = json.loads(item.value_json)
    keys = [item.key] if item.key else list(item.nested_key)
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def read_run(run_dir: Path) -> dict:
    log = next(Path(run_dir).glob("*.wandb"))
    out: dict = {"run": {}, "config": {}, "history": [], "summary": {}, "tables": {}}
    for record in records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            out["run"] = {"id": r.run_id, "project": r.project, "group": r.run_group, "name": r.display_name,
                          "job_type": r.job_type, "tags": list(r.tags)}
            for item in r.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            row: dict = {}
            for item in record.history.item:
                _put(row, item)
            out["history"].append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _put(out["summary"], item)
    out["config"].pop("_wandb", None)
    for row in out["history"]:
        for key, value in row.items():
            if isinstance(value, dict) and value.get("_type") == "table-file":
                out["tables"][key] = json.loads((Path(run_dir) / "files" / value["path"]).read_text())
    return out
