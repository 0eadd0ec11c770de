"""--data-placement node-local: the data set copied once per node, timed as DLT's "placement"
part, read from the copy and removed by the node's last rank (hpcscale/train/placement.py)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from conftest import tiny_events

from hpcscale.errors import UserError
from hpcscale.train.placement import NodeLocalCopy, copy_name


def dataset(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    (folder / "shard-0.h5").write_bytes(os.urandom(4096))
    return folder


def test_the_first_rank_copies_the_others_wait_and_the_last_removes(tmp_path):
    data, root = dataset(tmp_path / "data"), tmp_path / "node"
    root.mkdir()
    ranks = [NodeLocalCopy(data, root, "77", r) for r in range(3)]
    got: dict[int, Path] = {}
    waiting = [threading.Thread(target=lambda r=r: got.update({r: ranks[r].place(False)}))
               for r in (1, 2)]  # fmt: skip
    for t in waiting:
        t.start()
    got[0] = ranks[0].place(True)
    for t in waiting:
        t.join(timeout=30)
    copy = root / copy_name(data, "77")
    assert set(got.values()) == {copy}
    assert (copy / "shard-0.h5").read_bytes() == (data / "shard-0.h5").read_bytes()
    ranks[0].release()
    ranks[2].release()
    assert copy.exists()  # rank 1 still reads it
    ranks[1].release()
    assert not copy.exists() and list(root.iterdir()) == []


def test_a_half_copy_is_replaced_and_a_whole_one_reused(tmp_path):
    data, root = dataset(tmp_path / "data"), tmp_path / "node"
    root.mkdir()
    copy = root / copy_name(data, "9")
    copy.mkdir()
    (copy / "junk").write_text("a killed job's half copy")
    first = NodeLocalCopy(data, root, "9", 0)
    assert first.place(True) == copy and not (copy / "junk").exists()
    (copy / "mark").write_text("kept")  # whole: a second segment's first rank reuses it
    again = NodeLocalCopy(data, root, "9", 0)
    assert again.place(True) == copy and (copy / "mark").exists()


def test_no_room_or_no_copy_is_one_clear_error(tmp_path):
    data = dataset(tmp_path / "data")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(UserError, match=r"cannot copy .* set HPCSCALE_NODE_LOCAL"):
        NodeLocalCopy(data, not_a_folder, "1", 0).place(True)
    with pytest.raises(UserError, match="did not appear within 0 s"):
        NodeLocalCopy(data, tmp_path, "1", 1).place(False, timeout_s=0.3)
    # The node's other ranks hear the first rank's error at once, not after the timeout.
    node = tmp_path / "node"
    node.mkdir()
    (node / copy_name(data, "2")).write_text("a file where the copy's folder goes")
    with pytest.raises(UserError, match="cannot copy"):
        NodeLocalCopy(data, node, "2", 0).place(True)
    with pytest.raises(UserError, match="cannot copy"):
        NodeLocalCopy(data, node, "2", 1).place(False, timeout_s=600)


def test_a_job_reads_the_node_local_copy_and_times_it(tmp_path):
    import subprocess
    import sys

    events = tiny_events(tmp_path / "events", 120, seed=5)
    node = tmp_path / "node"
    node.mkdir()
    env = dict(os.environ, HPCSCALE_NODE_LOCAL=str(node))
    res = subprocess.run(
        [sys.executable, "-m", "hpcscale", "run", "--ranks", "2", "--data", "events",
         "--model", "jishnet-small", "--epochs", "0.5", "--data-placement", "node-local",
         "--out", "job"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    summary = json.loads((tmp_path / "job" / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["dlt_parts_s"]["placement"] >= 0
    parts = summary["dlt_parts_s"]
    assert set(parts) == {"imports", "device", "placement", "staging", "build", "first_step"}
    assert sum(parts.values()) == pytest.approx(summary["dlt_s"], abs=0.05)
    rows = [json.loads(line) for line in (tmp_path / "job" / "rank-1.jsonl").open()]
    (placed,) = [r for r in rows if r.get("phase") == "placed"]
    assert Path(placed["path"]).parent == node and placed["path"] != str(events)
    assert list(node.iterdir()) == []  # the node's last rank removed the copy
