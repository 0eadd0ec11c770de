"""Model parallelism (``--model-parallel``): the shape checks, and JishNet split into pipeline
stages on Gloo giving the loss curve of the unsplit model (same seed, same data)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hpcscale.errors import PlanError, UserError
from hpcscale.plan import JobPlan, check_model_parallel
from hpcscale.train import stages
from hpcscale.train.config import parse
from hpcscale.train.records import read_records

R = 300
STEPS = 20


class Chain:
    cut_points = ("block1", "block2", "block3", "block4")
    cut_refusal = "no reason"


class Unsplittable:
    cut_points = ()
    cut_refusal = "its activations are sparse"


def test_default_cuts_spread_the_parts_evenly():
    assert stages.cuts("m", Chain, 2, None) == ("block2",)
    assert stages.cuts("m", Chain, 3, None) == ("block2", "block3")
    assert stages.cuts("m", Chain, 5, None) == Chain.cut_points
    assert stages.cuts("m", Chain, 3, "block1,block4") == ("block1", "block4")


@pytest.mark.parametrize(
    ("k", "asked", "words"),
    [
        (2, "block9", "'block9' is not a cut point of m; choose from block1"),
        (3, "block2", "3 stages need 2 cut point(s), not 1"),
        (3, "block3,block1", "give each cut point once, in model order"),
        (3, "block2,block2", "give each cut point once"),
        (6, None, "can be cut into at most 5 stages"),
    ],
)
def test_bad_cut_points_are_refused_in_one_line(k, asked, words):
    with pytest.raises(UserError) as exc:
        stages.cuts("m", Chain, k, asked)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_a_model_without_cut_points_is_refused_with_its_reason():
    with pytest.raises(UserError, match="cannot be split into stages: its activations are sparse"):
        stages.cuts("scnet", Unsplittable, 2, None)


def test_micro_batches():
    assert stages.micro_batches(7, 2, None, "1f1b") == 7  # 7 is prime: micro-batches of one
    assert stages.micro_batches(8, 2, None, "1f1b") == 2
    assert stages.micro_batches(8, 3, None, "gpipe") == 4
    assert stages.micro_batches(8, 2, 8, "1f1b") == 8
    with pytest.raises(UserError, match="--micro-batches 3 does not divide the minibatch of 8"):
        stages.micro_batches(8, 2, 3, "1f1b")
    with pytest.raises(UserError, match="1f1b needs at least one micro-batch per stage"):
        stages.micro_batches(8, 4, 2, "1f1b")
    assert stages.micro_batches(8, 4, 2, "gpipe") == 2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--model", "scnet-small"], "model scnet-small cannot be split into stages"),
        (["--model", "3dgan-small"], "cannot be split into stages: a GAN step"),
        (["--stage-cuts", "fc9"], "--stage-cuts fc9: 'fc9' is not a cut point of jishnet"),
        (["--engine", "horovod"], "--model-parallel 2 needs --engine torch"),
        (["--batch", "9", "--micro-batches", "2"], "--micro-batches 2 does not divide"),
    ],
)
def test_the_rank_options_refuse_a_bad_pipeline_in_one_line(args, words):
    with pytest.raises(UserError) as exc:
        parse(["--data", "d", "--out", "o", "--model-parallel", "2", *args])
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_pipeline_options_need_model_parallel():
    with pytest.raises(UserError, match="--stage-cuts needs --model-parallel 2 or more"):
        parse(["--data", "d", "--out", "o", "--stage-cuts", "block1"])


def _plan(ranks: int, per_node: int, gpus: int = 0, ranks_per_gpu: int = 1) -> JobPlan:
    return JobPlan(
        site="s", nodes=-(-ranks // per_node), ranks=ranks, ranks_per_node=per_node,
        gpus_per_rank=0 if ranks_per_gpu > 1 else int(bool(gpus)), cpus_per_rank=1,
        walltime_s=3600, ranks_per_gpu=ranks_per_gpu, gpus=gpus,
    )  # fmt: skip


class _Site:
    name = "s"


def test_plans_refuse_shapes_a_node_cannot_hold():
    check_model_parallel(_Site, _plan(8, 4), 4)  # type: ignore[arg-type]
    check_model_parallel(_Site, _plan(8, 4), 2)  # type: ignore[arg-type]
    for plan, k, words in [
        (_plan(6, 6), 4, "needs a number of ranks that 4 divides (got 6)"),
        (_plan(12, 6), 4, "runs 6 rank(s) per node, and a pipeline's 4 stages must share a node"),
        (_plan(4, 4, gpus=2, ranks_per_gpu=2), 2, "puts 2 ranks on each GPU"),
    ]:
        with pytest.raises(PlanError) as exc:
            check_model_parallel(_Site, plan, k)  # type: ignore[arg-type]
        assert words in str(exc.value) and "\n" not in str(exc.value)


def test_run_refuses_a_model_parallel_shape_before_any_rank_starts(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "hpcscale", "run", "--ranks", "2", "--model-parallel", "4",
         "--model", "jishnet-small", "--data", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2
    assert "--model-parallel 4 needs a number of ranks that 4 divides (got 2)" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "o").exists()


# -- on Gloo: the split model against the unsplit one -----------------------------------------


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    from hpcscale.data.generate import generate  # numpy, h5py: the Gloo tests only

    folder = tmp_path_factory.mktemp("pipeline") / "events"
    generate(folder, 320, resolution=R, seed=2, workers=1)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(world: int, out: Path, data: Path, args: list[str]) -> dict:
    """``world`` ranks of the training core (as torchrun starts them), 20 steps per group."""
    port = _free_port()
    groups = world // (int(args[args.index("--model-parallel") + 1]) if args else 1)
    common = [
        "--data", str(data), "--out", str(out), "--model", "jishnet-small", "--seed", "5",
        "--max-events", str(7 * STEPS * groups), "--epochs", "1", "--ttl-window", "5",
    ]  # fmt: skip
    env = {**os.environ, "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hpcscale.train", *common, *args],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(world)
    ]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    return json.loads((out / "summary.json").read_text())


def _curve(out: Path) -> list[float]:
    rows = read_records(out / "rank-0.jsonl")
    return [r["global_loss"] for r in rows if r["kind"] == "sync"]


@pytest.mark.parametrize(("stages_", "groups"), [(2, 1), (2, 2)])
def test_split_model_follows_the_unsplit_loss_curve(events, tmp_path, stages_, groups):
    plain = _train(groups, tmp_path / "dp", events, [])
    split = _train(stages_ * groups, tmp_path / "mp", events, ["--model-parallel", str(stages_)])
    assert plain["steps"] == split["steps"] == STEPS
    # float32 suffices: the micro-batches only regroup the sums (differences ~1e-7)
    assert _curve(tmp_path / "mp") == pytest.approx(_curve(tmp_path / "dp"), rel=1e-5)
    assert split["val_accuracy"] == pytest.approx(plain["val_accuracy"])
    p = split["pipeline"]
    assert (p["stages"], p["groups"], p["devices"]) == (stages_, groups, stages_ * groups)
    assert p["cuts"] == ["block2"] and p["schedule"] == "1f1b" and p["micro_batches"] == 7
    assert [s["parts"] for s in p["per_stage"]] == [
        ["block1", "block2"], ["block3", "block4", "head"],
    ]  # fmt: skip
    # block2's output: 7 images × 8 channels × 12 × 12 float32, sent forward, its gradient back
    assert p["per_stage"][0]["activation_bytes"] == 7 * 8 * 12 * 12 * 4
    assert p["per_stage"][1]["gradient_bytes"] == 7 * 8 * 12 * 12 * 4
    assert p["per_stage"][0]["gradient_bytes"] == p["per_stage"][1]["activation_bytes"] == 0
    for s in p["per_stage"]:
        assert 0 < s["stage_compute_s"] <= s["pipeline_s"] and 0 <= s["bubble_fraction"] < 1
    assert sorted(d["rank"] for d in p["per_device"]) == list(range(stages_ * groups))
    assert all(d["peak_rss_gib"] > 0 for d in p["per_device"])
    steps = [r for r in read_records(tmp_path / "mp" / "rank-1.jsonl") if r["kind"] == "step"]
    assert {r["stage"] for r in steps} == {1} and all("bubble_fraction" in r for r in steps)


def test_report_compares_data_and_model_parallel_at_equal_devices():
    from hpcscale.analysis import parallelism

    dp = {"config": {"model_parallel": 1}, "peak_device_memory_gib": 52.4}
    mp = {
        "config": {"model_parallel": 2},
        "pipeline": {
            "bubble_fraction": 0.25, "activation_bytes_per_step": 3 * 2**20, "cuts": ["block2"],
            "micro_batches": 7,
            "per_device": [{"peak_memory_gib": 20.0, "peak_rss_gib": 3.0},
                           {"peak_memory_gib": 9.5, "peak_rss_gib": 2.0}],
        },
    }  # fmt: skip
    base = {"status": "completed", "n": 2, "batch": 7}
    jobs = [
        {**base, "samples_per_s_steady": 70.0, **parallelism.job_figures(dp)},
        {**base, "samples_per_s_steady": 40.0, **parallelism.job_figures(mp)},
    ]
    assert jobs[1]["peak_memory_gib"] == 20.0 and jobs[1]["model_parallel"] == 2
    blocks = parallelism.section([{"model": "jishnet", "jobs": jobs}])
    _, rows = blocks[-1][1]
    assert rows == [
        ["jishnet", "2", "data", "2", "7", "70.0", "52.40 GiB", "–", "–", "–"],
        ["jishnet", "2", "model, 2 stages", "1", "7", "40.0", "20.00 GiB", "25 %", "3.00 MiB",
         "block2"],
    ]  # fmt: skip
    assert parallelism.section([{"model": "jishnet", "jobs": jobs[:1]}]) == []


def test_the_summary_prints_the_stage_figures():
    from hpcscale.tables import pipeline_lines

    stage = {"parameters": 912, "stage_compute_s": 0.08, "pipeline_s": 0.1,
             "bubble_fraction": 0.2, "activation_bytes": 2048, "gradient_bytes": 0,
             "peak_memory_gib": 1.5, "parts": ["block1", "block2"], "stage": 0}  # fmt: skip
    summary = {"pipeline": {
        "stages": 2, "groups": 1, "devices": 2, "schedule": "1f1b", "micro_batches": 7,
        "cuts": ["block2"], "bubble_fraction": 0.5, "activation_bytes_per_step": 2048,
        "gradient_bytes_per_step": 2048, "per_stage": [stage],
    }}  # fmt: skip
    first, line = pipeline_lines(summary)
    assert "2 stages × 1 data-parallel group (2 devices), 1f1b, 7 micro-batches" in first
    assert "cut after block2; bubble 50 %, 2.0 KiB of activations" in first
    assert line == (
        "  stage 0 (block1+block2, 912 parameters): compute 80.0 ms of 100.0 ms per step, "
        "bubble 20 %, sends 2.0 KiB, peak 1.50 GiB on the device"
    )
    assert pipeline_lines({}) == []


def test_a_rank_imports_the_pipeline_schedules_only_to_build_a_pipeline():
    """torch.distributed.pipelining imports torch._dynamo, DTensor and sympy (1.9 s of every
    rank's start-up here, in DLT's "imports" part): the loop's import leaves it out, and the
    background thread of threads.preimport_dynamo stays the only early import of the compiler."""
    code = (
        "import sys\n"
        "import hpcscale.train.loop\n"
        "print(sorted(m for m in ('torch.distributed.pipelining', 'torch._dynamo', 'sympy')\n"
        "             if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "[]", out.stdout
