"""Issue 27: the user's own training. Workloads from other packages (entry points, and
``--model package.module:Class``), any training command run unmodified on every rank and
measured (process, MLPerf logging lines, ``hpcscale.track``), and the faults of such commands.
Runs on CPU; the example package is pip-installed into a temporary folder (``--target``) that
only the commands of these tests see (PYTHONPATH)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpcscale.cli.command import split_command
from hpcscale.command import mllog
from hpcscale.command.config import parse_target

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DDP = EXAMPLES / "ddp"


def hpcscale(*args: str, cwd: Path, path: list[Path] = (), timeout: int = 600):  # type: ignore[assignment]
    """`python -m hpcscale ARGS` with this checkout (and ``path``) importable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, [ROOT, *path])))
    return subprocess.run(
        [sys.executable, "-m", "hpcscale", *args], capture_output=True, text=True, cwd=cwd,
        env=env, timeout=timeout,
    )  # fmt: skip


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/tiny-mlp installed with pip into a folder of its own (not the shared Python)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLES / "tiny-mlp")],
        check=True, capture_output=True, cwd=target,
    )  # fmt: skip
    return target


# --- the command line: a command after `--` ---------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "args", "command"),
    [
        (["run", "--ranks", "2", "--", "python", "t.py", "--epochs", "2"],
         ["run", "--ranks", "2"], ["python", "t.py", "--epochs", "2"]),
        (["-v", "submit", "--site", "x", "--target", "k>=1", "--", "python", "--", "a"],
         ["-v", "submit", "--site", "x", "--target", "k>=1"], ["python", "--", "a"]),
        (["render", "--site", "x", "--"], ["render", "--site", "x"], []),
        (["run", "--ranks", "2", "--epochs", "2"], ["run", "--ranks", "2", "--epochs", "2"], None),
        (["status", "--", "x"], ["status", "--", "x"], None),  # takes no command: left to click
    ],
)  # fmt: skip
def test_command_is_split_off_before_click(argv, args, command) -> None:
    assert split_command(argv) == (args, command)


def test_submit_keeps_a_command_apart_from_its_spec_file_and_options(tmp_path: Path) -> None:
    """`submit` takes a first plain word as its SPEC file: the command's words must not reach
    it; options before `--` are the measuring wrapper's, and the spec keeps the command."""
    res = hpcscale("submit", "--site", "local", "--ranks", "1,2", "--study", "s", "--dry-run",
                   "--target", "eval_accuracy>=0.5", "--", "python", "train.py", "--lr", "0.1",
                   cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    spec = (tmp_path / "s" / "study.yaml").read_text()
    assert "command:\n- python\n- train.py\n- --lr\n- '0.1'" in spec
    assert "- --target\n- eval_accuracy>=0.5" in spec
    script = (tmp_path / "s" / "jobs" / "2r" / "job.sh").read_text()
    assert "measured command" in script and "-- python train.py --lr 0.1" in script
    res = hpcscale("run", "--ranks", "1", "--", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "command" in res.stderr
    res = hpcscale("run", "--ranks", "1", "--model", "jishnet", "--", "true", cwd=tmp_path)
    assert res.returncode == 2 and "model" in res.stderr and "Traceback" not in res.stderr
    res = hpcscale("run", "--ranks", "1", "--target", "acc=3", "--", "true", cwd=tmp_path)
    assert res.returncode == 2 and "KEY>=VALUE" in res.stderr and res.stderr.count("\n") == 1


# --- workloads from other packages -------------------------------------------------------------


def test_installed_package_workload(installed: Path, tmp_path: Path) -> None:
    res = hpcscale("workloads", cwd=tmp_path, path=[installed])
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if line.startswith("tiny-mlp"))
    assert row.split() == ["tiny-mlp", "tiny-mlp", "0.1.0", "own"]
    res = hpcscale("run", "--ranks", "2", "--model", "tiny-mlp", "--epochs", "1", "--out", "r",
                   cwd=tmp_path, path=[installed])  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    s = summary(tmp_path / "r")
    assert s["status"] == "completed" and s["world_size"] == 2 and s["model"] == "tiny-mlp"
    for key in ("dlt_s", "epoch_rate_per_min", "samples_per_s", "val_accuracy"):
        assert s[key] is not None and s[key] > 0, key
    assert s["provenance"]["workload"] == {
        "source": "package", "package": "tiny-mlp", "version": "0.1.0",
        "class": "tiny_mlp.workload:TinyMLP",
    }  # fmt: skip


def test_workload_by_module_path(installed: Path, tmp_path: Path) -> None:
    model = "tiny_mlp.workload:TinyMLP"
    res = hpcscale("run", "--ranks", "2", "--model", model, "--epochs", "1", "--out", "r",
                   cwd=tmp_path, path=[installed])  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    s = summary(tmp_path / "r")
    assert s["status"] == "completed" and s["val_accuracy"] > 0
    origin = s["provenance"]["workload"]
    assert origin["source"] == "module" and origin["class"] == model
    import hashlib

    assert origin["sha256"] == hashlib.sha256(Path(origin["file"]).read_bytes()).hexdigest()


def test_uninstalled_and_bad_names_are_one_line(tmp_path: Path) -> None:
    for model, words in (("tiny-mlp", "unknown"), ("tiny_mlp.workload:TinyMLP", "cannot be "
                         "imported"), ("os.path:join", "not a hpcscale")):  # fmt: skip
        res = hpcscale("run", "--ranks", "2", "--model", model, "--out", "r", cwd=tmp_path)
        assert res.returncode == 2, res.stdout + res.stderr
        assert res.stderr.count("\n") == 1 and words in res.stderr, res.stderr
        assert not (tmp_path / "r").exists()


def test_name_clash_is_one_line(tmp_path: Path) -> None:
    dist = tmp_path / "site" / "clash-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: clash\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[hpcscale.workloads]\njishnet = clash.w:W\n")
    res = hpcscale("workloads", cwd=tmp_path, path=[tmp_path / "site"])
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "'jishnet' is declared by 2 sources" in res.stderr
    res = hpcscale("render", "--site", "local", "--ranks", "1", "--model", "jishnet",
                   cwd=tmp_path, path=[tmp_path / "site"])  # fmt: skip
    assert res.returncode == 2 and "clash 0.1" in res.stderr


# --- training commands ------------------------------------------------------------------------


def test_plain_ddp_script(tmp_path: Path) -> None:
    res = hpcscale("run", "--ranks", "2", "--out", "r", "--", sys.executable,
                   str(DDP / "train.py"), "--epochs", "2", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    s = summary(tmp_path / "r")
    assert s["status"] == "completed" and s["world_size"] == 2 and s["workload"] == "command"
    assert s["wall_time_s"] > 0 and s["exit_status"] == {"0": 0, "1": 0}
    assert set(s["hosts"]) == {"0", "1"} and all(s["hosts"].values())
    assert s["peak_rss_gib"] > 0
    out = (tmp_path / "r" / "rank-0.out").read_text()
    assert "epoch 1: loss" in out  # the script's own lines, in the job folder
    assert s["provenance"]["command_files_sha256"][str(DDP / "train.py")]


def _mllog(path: Path) -> list[dict]:
    """The log's events, read here independently of hpcscale.command.mllog."""
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith(":::MLLOG "):
            rows.append(json.loads(line[len(":::MLLOG ") :]))
    return rows


def test_mlperf_logging_study_agrees_with_its_log(tmp_path: Path) -> None:
    pytest.importorskip("mlperf_logging")
    res = hpcscale("submit", "--site", "local", "--ranks", "1,2", "--study", "s",
                   "--target", "eval_accuracy>=0.95", "--", sys.executable,
                   str(DDP / "train_mlperf.py"), "--epochs", "3", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    for label in ("1r", "2r"):
        job = tmp_path / "s" / "jobs" / label
        s = summary(job)
        assert s["status"] == "completed", s
        events = _mllog(job / "rank-0.out") + _mllog(job / "rank-0.err")
        t = {}
        for e in events:
            t.setdefault(e["key"], e["time_ms"] / 1000)
        start = s["process_start_at"]
        assert s["dlt_s"] == pytest.approx(t["run_start"] - start, abs=1e-6)
        assert s["dlt_parts_s"]["staging"] == pytest.approx(
            t["staging_stop"] - t["staging_start"], abs=1e-3
        )
        hit = next(e for e in events if e["key"] == "eval_accuracy" and e["value"] >= 0.95)
        assert s["ttl_s"] == pytest.approx(hit["time_ms"] / 1000 - start, abs=1e-6)
        stops = [e["time_ms"] / 1000 for e in events if e["key"] == "epoch_stop"]
        rate = len(stops) / ((stops[-1] - t["epoch_start"]) / 60)
        assert s["epochs"] == 3 and s["epoch_rate_per_min"] == pytest.approx(rate, rel=1e-9)
        assert s["samples_per_s"] > 0 and s["global_batch"] == 64 * int(label[0])
    res = hpcscale("report", "s", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    report = (tmp_path / "s" / "report" / "report.md").read_text()
    assert "TTL" in report and "epoch" in report


def test_track_script_gives_the_cores_records(tmp_path: Path) -> None:
    res = hpcscale("run", "--ranks", "2", "--out", "r", "--target-loss", "0.5",
                   "--ttl-window", "5", "--", sys.executable, str(DDP / "train_track.py"),
                   "--epochs", "2", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    s = summary(tmp_path / "r")
    assert s["status"] == "completed"
    split = s["step_time_split_s"]
    assert {"data_s", "compute_s", "allreduce_s", "step_s"} <= set(split)
    assert set(s["dlt_parts_s"]) == {"start_up", "device", "staging", "build"}
    assert sum(s["dlt_parts_s"].values()) == pytest.approx(
        min(_first_steps(tmp_path / "r")), abs=1e-3
    )
    rows = [json.loads(x) for x in (tmp_path / "r" / "rank-0.jsonl").read_text().splitlines()]
    syncs = [r for r in rows if r["kind"] == "sync"]
    smoothed = [r["smoothed_loss"] for r in syncs]
    first = next(i for i, v in enumerate(smoothed) if v is not None and v < 0.5)
    target = next(r for r in rows if r["kind"] == "phase" and r["phase"] == "target")
    assert target["step"] == syncs[first]["step"] and s["ttl_s"] == target["ttl_s"]
    assert s["steps_per_epoch"] == 4096 // 128 and s["epochs"] == 2
    assert s["steady_step_s"] > 0 and s["val_accuracy"] > 0.5
    res = hpcscale("report", "r", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    pngs = {p.name.split("_local")[0] for p in (tmp_path / "r" / "report").glob("*.png")}
    assert {"loss", "time_split", "ttl_vs_n.png", "dlt_vs_n.png"} <= pngs


def _first_steps(job: Path) -> list[float]:
    rows = [json.loads(x) for x in (job / "rank-0.jsonl").read_text().splitlines()]
    return [next(r["t"] for r in rows if r["kind"] == "step")]


def test_track_is_a_no_op_outside_a_job(tmp_path: Path) -> None:
    code = (
        "from hpcscale import track; track.phase('x'); track.step(loss=1.0); "
        "track.evaluate(a=1); import sys; print(track.active(), 'torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCSCALE_TRACK")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout  # fmt: skip
    assert out.split() == ["False", "False"]


# --- faults ----------------------------------------------------------------------------------


def _run_fault(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    res = hpcscale("run", "--ranks", "2", "--out", "r", *args, cwd=tmp_path)
    assert "Traceback" not in res.stdout + res.stderr
    return res, summary(tmp_path / "r")


def test_command_not_found(tmp_path: Path) -> None:
    res, s = _run_fault(tmp_path, "--", "no-such-command-hpcscale")
    assert res.returncode == 1 and s["status"] == "failed"
    assert "command not found: no-such-command-hpcscale" in s["failure"]["reason"]
    assert res.stdout.splitlines()[0].count("command not found") == 1


@pytest.mark.parametrize(
    ("code", "status", "reason", "exit_"),
    [
        ("sys.exit(3)", "failed", "the command exited with status 3", 3),
        ("os.kill(os.getpid(), signal.SIGKILL)", "failed", "killed by SIGKILL", "SIGKILL"),
    ],
)
def test_a_rank_that_fails(tmp_path: Path, code: str, status: str, reason: str, exit_) -> None:
    script = f"import os, signal, sys, time\nif os.environ['RANK'] == '1':\n    {code}\n" \
             "time.sleep(20)\n"  # fmt: skip
    res, s = _run_fault(tmp_path, "--", sys.executable, "-c", script)
    assert res.returncode == 1 and s["status"] == status
    assert s["failure"]["rank"] == 1 and reason in s["failure"]["reason"]
    assert s["exit_status"]["1"] == exit_
    assert f"rank 1 on {s['hosts']['1']}: " in res.stdout.splitlines()[0]


def test_a_hang_hits_the_walltime(tmp_path: Path) -> None:
    """A command that never gets its process group (rank 1 never joins) is stopped at the
    job's time limit; the summary says so."""
    script = (
        "import os, time, torch.distributed as d\n"
        "if os.environ['RANK'] == '1': time.sleep(600)\n"
        "d.init_process_group('gloo')\n"
    )
    res, s = _run_fault(tmp_path, "--walltime", "00:00:09", "--", sys.executable, "-c", script)
    assert res.returncode == 1 and s["status"] == "timeout"
    assert "time limit" in s["failure"]["reason"]
    assert s["wall_time_s"] < 9


def test_malformed_mllog_and_a_target_the_log_lacks(tmp_path: Path) -> None:
    script = (
        "import json, time\n"
        "def log(key, value=None, **meta):\n"
        "    print(':::MLLOG ' + json.dumps({'time_ms': time.time() * 1000, 'key': key,"
        " 'value': value, 'metadata': meta}), flush=True)\n"
        "log('run_start')\n"
        "print(':::MLLOG {not json')\n"
        'print(\':::MLLOG {"key": "no_time"}\')\n'
        "log('eval_accuracy', 0.5, epoch_num=0)\n"
        "log('run_stop', status='success')\n"
    )
    res, s = _run_fault(tmp_path, "--target", "eval_loss<=0.1", "--", sys.executable, "-c",
                        script)  # fmt: skip
    assert res.returncode == 0 and s["status"] == "completed"
    assert s["mllog_malformed_lines"] == 2 and s["mllog_events"] == 3
    assert s["ttl_s"] is None and "has no eval_loss lines" in s["ttl_note"]
    assert s["dlt_s"] > 0 and s["val_accuracy"] == 0.5
    assert "note: --target eval_loss<=0.1: the log has no eval_loss" in res.stdout


def test_mllog_parsing_rules(tmp_path: Path) -> None:
    out = tmp_path / "rank-0.out"
    lines = [
        {"time_ms": 10_000, "key": "staging_start"}, {"time_ms": 12_000, "key": "staging_stop"},
        {"time_ms": 13_000, "key": "run_start"}, {"time_ms": 14_000, "key": "epoch_start"},
        {"time_ms": 20_000, "key": "epoch_stop", "metadata": {"samples_count": 600}},
        {"time_ms": 21_000, "key": "eval_accuracy", "value": 0.7},
        {"time_ms": 26_000, "key": "epoch_stop", "metadata": {"samples_count": 600}},
        {"time_ms": 27_000, "key": "eval_accuracy", "value": 0.8},
        {"time_ms": 28_000, "key": "run_stop", "metadata": {"status": "success"}},
    ]  # fmt: skip
    out.write_text("noise\n" + "".join(f"[1] :::MLLOG {json.dumps(x)}\n" for x in lines))
    m = mllog.metrics(mllog.read([out]), 5.0, None)
    assert m["dlt_s"] == 8.0 and m["dlt_parts_s"] == {"start_up": 5.0, "staging": 2.0, "rest": 1.0}
    assert m["epochs"] == 2 and m["epoch_rate_per_min"] == pytest.approx(2 / (12 / 60))
    assert m["samples_per_s"] == pytest.approx(1200 / 12) and m["ttl_s"] == 23.0
    m = mllog.metrics(mllog.read([out]), 5.0, parse_target("eval_accuracy>=0.75"))
    assert m["ttl_s"] == 22.0 and m["val_accuracy"] == 0.8
    m = mllog.metrics(mllog.read([out]), 5.0, parse_target("eval_accuracy>=0.9"))
    assert m["ttl_s"] is None and "never met" in m["ttl_note"]


# --- on the real Slurm (.ci/slurm-up; HPCSCALE_REAL_SLURM=1) --------------------------------

real_slurm = pytest.mark.skipif(
    os.environ.get("HPCSCALE_REAL_SLURM") != "1",
    reason="needs the real Slurm that .ci/slurm-up starts (HPCSCALE_REAL_SLURM=1)",
)


@real_slurm
@pytest.mark.slurm
@pytest.mark.parametrize(
    ("site", "size", "labels"),
    [("local-slurm", ["--ranks", "1,2"], ["1r", "2r"]), ("local-nodes", ["--nodes", "2"], ["2r"])],
)
def test_ddp_script_on_real_slurm(tmp_path: Path, site: str, size: list, labels: list) -> None:
    res = hpcscale("submit", "--site", site, *size, "--study", "s", "--wait", "--",
                   sys.executable, str(DDP / "train.py"), "--epochs", "1", "--samples", "1024",
                   cwd=tmp_path, timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    for label in labels:
        s = summary(tmp_path / "s" / "jobs" / label)
        assert s["status"] == "completed", s
        assert s["provenance"]["launcher"] == "srun" and s["wall_time_s"] > 0
        assert all(v == 0 for v in s["exit_status"].values())
        out = (tmp_path / "s" / "jobs" / label / "rank-0.out").read_text()
        assert "epoch 0: loss" in out
        if site == "local-nodes":  # one rank on each node: two hosts
            assert len(set(s["hosts"].values())) == 2, s["hosts"]


def test_rank_environment_for_torch_and_horovod() -> None:
    from hpcscale.command.rank import rank_env
    from hpcscale.train.jobenv import detect

    slurm = {"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1",
             "SLURM_STEP_ID": "0", "SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "n[1-2]",
             "HPCSCALE_RANKS_PER_NODE": "2"}  # fmt: skip
    env = rank_env(detect(slurm), "torch", slurm)
    assert env == {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2",
                   "GROUP_RANK": "1", "MASTER_ADDR": "n1",
                   "MASTER_PORT": str(detect(slurm).master_port)}  # fmt: skip
    hvd = rank_env(detect(slurm), "horovod", slurm)
    assert hvd["HOROVOD_RANK"] == "3" and hvd["HOROVOD_SIZE"] == "4"
    assert hvd["HOROVOD_LOCAL_RANK"] == "1" and hvd["HOROVOD_LOCAL_SIZE"] == "2"
    assert hvd["HOROVOD_CROSS_RANK"] == "1" and hvd["HOROVOD_CROSS_SIZE"] == "2"
    torchrun = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
                "MASTER_ADDR": "h", "MASTER_PORT": "5"}  # fmt: skip
    assert rank_env(detect(torchrun), "torch", torchrun) == {"GROUP_RANK": "0"}


def test_render_shows_what_submit_writes_for_a_command(tmp_path: Path) -> None:
    cmd = ["--", "python", "train.py", "--lr", "0.1"]
    res = hpcscale("submit", "--site", "local-slurm", "--ranks", "1,2", "--study", "s",
                   "--dry-run", *cmd, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    for label in ("1r", "2r"):
        res = hpcscale("render", "--site", "local-slurm", "--ranks", "1,2", "--study", "s",
                       "--job", label, *cmd, cwd=tmp_path)  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert res.stdout == (tmp_path / "s" / "jobs" / label / "job.sh").read_text()
