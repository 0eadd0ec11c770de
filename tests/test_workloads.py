"""The workload component: a workload defined only in the tests trains through the unchanged loop;
the loop and its neighbours import no workload; the registry and the rank's options."""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from hpcscale import workloads  # noqa: E402
from hpcscale.errors import UserError  # noqa: E402
from hpcscale.train.records import read_records  # noqa: E402

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# A rank that registers the tests' workload, then runs the core exactly as `python -m
# hpcscale.train` does.
DRIVER = f"""
import sys, time
sys.path.insert(0, {str(TESTS)!r})
from hpcscale import workloads
workloads.register(workloads.WorkloadSpec(
    "fake-linear", "fake_workload", "lartpc", workloads.LARTPC, ("fake-linear",), 100
))
from hpcscale.train.config import parse
from hpcscale.train.loop import run
sys.exit(run(*parse(sys.argv[1:]), time.time()))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_workload_from_the_tests_trains_on_two_gloo_ranks(tmp_path):
    out = tmp_path / "job"
    port = _free_port()
    args = ["--model", "fake-linear", "--data", str(tmp_path), "--out", str(out), "--epochs", "40"]
    args += ["--ttl-window", "5", "--lr", "0.1"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DRIVER, *args],
            env={
                **os.environ,
                "RANK": str(r),
                "WORLD_SIZE": "2",
                "LOCAL_RANK": str(r),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "OMP_NUM_THREADS": "1",
            },
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    errors = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["stop_reason"] == "target"
    assert summary["workload"] == "fake-linear" and summary["sample_unit"] == "points"
    assert summary["ttl_s"] > summary["dlt_s_per_rank"]["0"] > 0  # the job's DLT is the slowest
    assert summary["target_loss"] == 0.05  # the workload's default
    assert summary["val_points"] == 64 and summary["val_mse"] < 0.1
    assert summary["config"]["lr"] == 0.1 and summary["config"]["batch"] == 16
    assert summary["data"] == {"dim": 4}
    assert summary["samples_per_s"] > 0
    assert set(summary["step_time_split_s"]) == {"index_s", "compute_s", "allreduce_s", "update_s"}
    # The start-up timeline: DLT's parts add up to the (slowest rank's) DLT.
    parts = summary["dlt_parts_s"]
    assert set(parts) == {"imports", "device", "staging", "build", "first_step"}
    assert all(v >= 0 for v in parts.values()) and parts["imports"] > 0
    assert sum(parts.values()) == pytest.approx(summary["dlt_s"], abs=2e-3)
    assert summary["steady_step_s"] > 0
    steady = summary["global_batch"] / summary["steady_step_s"]
    assert summary["samples_per_s_steady"] == pytest.approx(steady)
    assert summary["ttl_train_s"] == pytest.approx(summary["ttl_s"] - summary["dlt_s"])
    rows = read_records(out / "rank-1.jsonl")
    steps = [r for r in rows if r["kind"] == "step"]
    syncs = [r for r in rows if r["kind"] == "sync"]
    assert steps and all("mae" in r and "loss" in r for r in steps)
    local = [
        {r["step"]: r["mae"] for r in read_records(out / f"rank-{k}.jsonl") if r["kind"] == "step"}
        for k in (0, 1)
    ]
    for row in syncs:  # the workload's metric rides in the step's allreduce
        mean = (local[0][row["step"]] + local[1][row["step"]]) / 2
        assert row["global_mae"] == pytest.approx(mean)


CORE = (
    "loop", "records", "checkpoint", "sync", "workload", "config", "entry", "pipeline", "stages",
)  # fmt: skip


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_no_workload_and_no_data_format(module):
    tree = ast.parse((ROOT / "hpcscale" / "train" / f"{module}.py").read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    bad = {m for m in imported if m and (m.startswith(("hpcscale.workloads.", "hpcscale.data")))}
    assert not bad, f"hpcscale/train/{module}.py imports {bad}"
    code = " ".join(_code_words(tree)).lower()  # names and strings, not docs or comments
    for word in ("jishnet", "scnet", "blosc", "classes", "confusion", "images"):
        assert word not in code, f"hpcscale/train/{module}.py mentions {word}"


def _code_words(tree: ast.AST) -> list[str]:
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    words = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            words.append(node.value)
    return words


def test_registry_names_match_the_presets():
    from hpcscale.workloads.gan3d.model import PRESETS as GAN
    from hpcscale.workloads.jets.model import PRESETS as JETS
    from hpcscale.workloads.jishnet.model import PRESETS as JISHNET
    from hpcscale.workloads.scnet.model import PRESETS as SCNET

    presets = {"jishnet": JISHNET, "scnet": SCNET, "3dgan": GAN, "cms-jets": JETS}
    for name in workloads.names():
        spec = workloads.get(name)
        assert name in presets[spec.name]
    for entry in workloads.SPECS:  # every preset a model module knows is a registered name
        assert set(entry.presets) == set(presets[entry.name])
    with pytest.raises(UserError, match="unknown; choose one of jishnet"):
        workloads.get("resnet")


def test_rank_options_come_from_the_workload_config():
    from hpcscale.train.config import parse

    core, wl = parse(["--data", "d", "--out", "o", "--model", "scnet-small", "--no-bf16"])
    assert core.model == "scnet-small" and wl.model == "scnet-small" and wl.bf16 is False
    assert type(wl).__name__ == "SCNetConfig"
    with pytest.raises(UserError, match="unknown option '--channels-last'"):
        parse(["--data", "d", "--out", "o", "--model", "scnet", "--channels-last"])
    with pytest.raises(UserError, match=r"--lr -1\.0: Input should be greater than 0"):
        parse(["--data", "d", "--out", "o", "--lr", "-1"])
    with pytest.raises(
        UserError, match=r"^--horovod-timeline needs --engine horovod \(not torch\)$"
    ):
        parse(["--data", "d", "--out", "o", "--horovod-timeline"])
    with pytest.raises(UserError, match="--codec 'nope'"):
        parse(["--data", "d", "--out", "o", "--codec", "nope"])


def test_scnet_on_two_gloo_ranks_reaches_its_target(tmp_path):
    from conftest import cli

    from hpcscale.data.generate import generate

    events = tmp_path / "events"
    generate(events, 240, resolution=400, seed=3, workers=2)
    out = tmp_path / "job"
    res = cli(
        *f"run --ranks 2 --data {events} --out {out} --model scnet-small --target-loss 1.45 "
        "--ttl-window 10 --epochs 10".split(),
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["stop_reason"] == "target"
    assert summary["workload"] == "scnet" and summary["model"] == "scnet-small"
    assert summary["ttl_s"] > summary["dlt_s_per_rank"]["0"] > 0
    assert summary["epoch_rate_per_min"] > 0 and summary["samples_per_s"] > 0
    assert len(summary["confusion"]) == 5 and summary["val_events"] == 24
    assert summary["data"]["occupancy"] < 0.2  # sparse all the way: no dense images staged
    assert "assemble_s" in summary["step_time_split_s"]
    assert "decompress_s" not in summary["step_time_split_s"]


def test_a_preset_selects_its_workloads_one_spec():
    small = workloads.spec("jishnet-small")
    assert small is workloads.spec("jishnet")
    assert (small.name, small.module, small.data, small.presets) == (
        "jishnet", "hpcscale.workloads.jishnet", "lartpc", ("jishnet", "jishnet-small")
    )  # fmt: skip
    gan = workloads.spec("3dgan-small")
    assert (gan.name, gan.data, gan.generator, gan.events) == (
        "3dgan", "calo3d", "hpcscale.workloads.gan3d.showers", 4000
    )  # fmt: skip
    kinds = [workloads.data_kind(m) for m in ("scnet-small", "3dgan", "cms-jets-small")]
    assert kinds == ["lartpc", "calo3d", "jets"]
    assert workloads.names() == [m for entry in workloads.SPECS for m in entry.presets]
    assert workloads.MODELS["cms-jets-small"] == "hpcscale.workloads.jets"
    assert dict(workloads.DEFAULT_EVENTS) == {"lartpc": 2000, "calo3d": 4000, "jets": 4000}
    with pytest.raises(TypeError):
        workloads.MODELS["resnet"] = "x"  # type: ignore[index]  # a read-only view
    assert workloads.get("3dgan-small").name == "3dgan"
    assert workloads.generator("cms-jets").__module__ == "hpcscale.workloads.jets.simulate"


def test_an_unknown_model_is_one_line_naming_the_flag_and_the_names():
    with pytest.raises(UserError) as info:
        workloads.spec("resnet", "--workload")
    assert str(info.value) == (
        "--workload 'resnet' is unknown; choose one of jishnet, jishnet-small, scnet, "
        "scnet-small, 3dgan, 3dgan-small, cms-jets, cms-jets-small, or give a class as "
        "package.module:Class (`hpcscale workloads` lists every name)"
    )
    with pytest.raises(UserError, match=r"^--model 'jishnet-tiny' is unknown"):
        workloads.data_kind("jishnet-tiny")


def test_a_spec_keeps_its_names_to_itself():
    with pytest.raises(ValueError, match="presets start with its name"):
        workloads.WorkloadSpec("other", "m", "lartpc", workloads.LARTPC, ("other-small",), 10)
    taken = workloads.WorkloadSpec("other", "m", "lartpc", workloads.LARTPC, ("other", "scnet"), 10)
    with pytest.raises(ValueError, match="'scnet' already selects 'scnet'"):
        workloads.register(taken)
    assert "other" not in workloads.names()


def test_listing_and_checking_names_imports_no_workload_and_no_torch():
    code = (
        "import sys\n"
        "from hpcscale import workloads\n"
        "workloads.names(); workloads.check_name('3dgan'); workloads.spec('cms-jets-small')\n"
        "assert workloads.data_kind('3dgan-small') == 'calo3d'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'\n"
        "             or m.startswith('hpcscale.workloads.')\n"
        "             and m != 'hpcscale.workloads.plugins'))\n"  # the plug-in lookup: light
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]", out.stdout
