"""A new user's first hour (issue 11): relative paths everywhere, checks before ranks start,
job folders accepted by collect/report, durations that read well, honest help texts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli, tiny_events

from hpcscale.fmt import duration_text, plural
from hpcscale.preflight import check_data
from hpcscale.tables import ttl_unset_reason
from hpcscale.train.config import parse


def test_acceptance_from_an_empty_folder_without_absolute_paths(tmp_path):
    assert (
        cli(
            "data", "generate", "--events", "40", "--resolution", "400", "--out", "ev", cwd=tmp_path
        ).returncode
        == 0
    )
    res = cli("run", "--ranks", "2", "--data", "ev", "--model", "jishnet-small", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    (job,) = (tmp_path / "runs").iterdir()
    relative = f"runs/{job.name}"
    assert f"hpcscale report {relative}" in res.stdout
    # 36 events / 2 ranks / 7 a step × 5 epochs = 10 steps < 25: said before and after the run
    assert "fewer than --ttl-window 25" in res.stderr
    assert "TTL not set: the job ran 10 steps" in " ".join(res.stdout.split())
    collected = cli("collect", relative, cwd=tmp_path)
    assert collected.returncode == 0 and "completed" in collected.stdout, collected.stderr
    report = cli("report", relative, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "Warning" not in report.stderr
    text = (job / "report" / "report.md").read_text()
    assert f"loss_local-{job.name}.png" in text and "| 2 |" in text
    assert not (tmp_path / "runs" / job.name / "manifest.json").exists()  # nothing added


@pytest.fixture
def events(tmp_path):
    return tiny_events(tmp_path / "events", 30, seed=3)  # 300 × 300: 27 train + 3 val


def _one_line_exit_2(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("setup", "args", "fragment"),
    [
        (
            "lowres",
            ["--model", "jishnet"],
            "events are 200×200, but jishnet needs images of at least 275×275",
        ),
        (
            "none",
            ["--max-events", "10"],
            "10 training images over 2 ranks give fewer than one minibatch of 7",
        ),
        ("shard", [], "train-00000.h5: no such file (listed in manifest.json"),
        ("none", ["--model", "resnet"], "--model 'resnet' is unknown; choose one of jishnet"),
        ("none", ["--rank", "2"], "unknown option '--rank' (neither hpcscale's nor the training"),
        ("none", ["--batch", "x"], "training option argument --batch: invalid int value: 'x'"),
    ],
)
def test_run_refuses_bad_data_before_ranks_start(tmp_path, events, setup, args, fragment):
    from hpcscale.data.generate import generate

    data = "events"
    if setup == "lowres":
        generate(tmp_path / "low", 20, resolution=200, seed=1, workers=1)
        data = "low"
    elif setup == "shard":
        (events / "train-00000.h5").unlink()
    res = cli("run", "--ranks", "2", "--data", data, "--out", "job", *args, cwd=tmp_path)
    assert fragment in _one_line_exit_2(res)
    assert not (tmp_path / "job").exists()  # nothing half-written


def test_check_data_notes_a_job_too_short_for_ttl(events):
    args = ["--data", "-", "--out", "-", "--epochs", "2"]
    (note,) = check_data(events, 1, *parse(args))  # 27 // 7 = 3 steps an epoch, 6 steps < 25
    assert "6 steps" in note and "--ttl-window 25" in note
    assert check_data(events, 1, *parse([*args, "--ttl-window", "5"])) == []


def test_submit_without_the_scheduler_says_so_before_generating_data(tmp_path):
    env_path = os.pathsep.join(
        p for p in os.environ["PATH"].split(os.pathsep) if not Path(p, "bsub").exists()
    )
    res = subprocess.run(
        [sys.executable, "-m", "hpcscale", "submit", "--site", "summitdev", "--gpus", "4,8"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PATH": env_path, "HPCSCALE_CACHE": str(tmp_path / "cache")},
        timeout=120,
    )
    line = _one_line_exit_2(res)
    assert "LSF's `bsub`, which is not on PATH" in line and "--dry-run" in line
    assert not (tmp_path / "cache").exists() and not (tmp_path / "studies").exists()
    dry = cli(
        "submit", "--site", "summitdev", "--gpus", "4,8", "--dry-run", "--study", "sd", cwd=tmp_path
    )
    assert dry.returncode == 0, dry.stderr
    assert (tmp_path / "sd" / "jobs" / "8g" / "job.sh").exists()
    assert "8g: dry-run: sd/jobs/8g/job.sh (8 ranks on 2 nodes, walltime 4 h)" in dry.stdout


def _failed_study(root: Path) -> Path:
    study = root / "study"
    job = study / "jobs" / "2r"
    job.mkdir(parents=True)
    (job / "summary.json").write_text(
        json.dumps(
            {
                "status": "failed",
                "world_size": 2,
                "failure": {"rank": 1, "reason": "CUDA out of memory"},
                "failures": [{"rank": 1, "reason": "CUDA out of memory"}],
            }
        )
    )
    manifest = {
        "study": "s1",
        "site": "local",
        "site_digest": "ab" * 32,
        "scheduler": "local",
        "created": 0.0,
        "jobs": [
            {
                "label": "2r",
                "gpus": 0,
                "ranks": 2,
                "nodes": 1,
                "walltime_s": 10200,
                "folder": "jobs/2r",
                "script": "jobs/2r/job.sh",
                "job_id": "999999",
                "state": "failed",
            }
        ],
    }
    (study / "manifest.json").write_text(json.dumps(manifest))
    return study


def test_report_of_a_study_without_a_finished_job_says_why(tmp_path):
    study = _failed_study(tmp_path)
    line = _one_line_exit_2(cli("report", "study", cwd=tmp_path))
    assert "no job has finished" in line and "job 2r: rank 1: CUDA out of memory" in line
    assert not (study / "report").exists()


def test_cancel_says_what_it_did(tmp_path):
    _failed_study(tmp_path)
    res = cli("cancel", "study", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "2r: failed, nothing to cancel" in res.stdout
    assert "cancelled 0 jobs of 1" in res.stdout


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.254, "0.25 s"),
        (4.25, "4.2 s"),
        (59.9, "59.9 s"),
        (125.4, "2 min 5 s"),
        (600, "10 min"),
        (3600, "1 h"),
        (10200, "2 h 50 min"),
    ],
)
def test_durations_read_in_the_best_unit(seconds, text):
    assert duration_text(seconds) == text


def test_plural_and_ttl_reasons():
    assert (plural(1, "rank"), plural(2, "rank")) == ("1 rank", "2 ranks")
    short = {"steps": 10, "ttl_window": 25, "final_smoothed_loss": None, "target_loss": 1.2}
    assert "ran 10 steps, fewer than the 25" in ttl_unset_reason(short)
    high = {"steps": 300, "ttl_window": 25, "final_smoothed_loss": 1.31, "target_loss": 1.2}
    assert "target loss 1.2 not reached (smoothed loss at the end: 1.310)" in ttl_unset_reason(high)


def test_help_lists_only_what_exists():
    for args in (
        ["--help"],
        ["data", "--help"],
        ["submit", "--help"],
        ["run", "--help"],
        ["sites", "show", "--help"],
        ["report", "--help"],
    ):
        res = cli(*args)
        assert res.returncode == 0 and "<bool>" not in res.stdout, (args, res.stdout)
    data_help = cli("data", "--help").stdout
    assert "inspect" not in data_help and "generate" in data_help


def test_sites_show_yaml_round_trips(tmp_path):
    res = subprocess.run(
        f"{sys.executable} -m hpcscale sites show pnnl --yaml > my.yaml && "
        f"{sys.executable} -m hpcscale sites validate my.yaml",
        shell=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 0 and "ok: my.yaml (slurm + srun)" in res.stdout, res.stderr
    (tmp_path / "mysites").mkdir()
    (tmp_path / "my.yaml").rename(tmp_path / "mysites" / "mine.yaml")
    rendered = cli(
        "render", "--site", "mine", "--sites-dir", "mysites", "--gpus", "2", cwd=tmp_path
    )
    assert rendered.returncode == 0 and "#SBATCH" in rendered.stdout, rendered.stderr


def test_loss_plot_names_the_walltime_in_a_readable_unit():
    from hpcscale.analysis.plots import walltime_note

    assert walltime_note(170, 20.0) == "walltime limit 2 min 50 s (off scale)"
    assert walltime_note(10200, 60.0) == "walltime limit 2 h 50 min (off scale)"
    assert walltime_note(170, 150.0) is None  # on scale: drawn as a line


@pytest.mark.parametrize(
    "args",
    [
        ["data", "generate", "--events", "5", "--out", "/proc/hpcscale-events"],
        ["run", "--data", "events", "--out", "/proc/hpcscale-job"],
        ["submit", "--site", "local", "--ranks", "1", "--study", "/proc/hpcscale-study"],
    ],
)
def test_an_unwritable_output_folder_is_refused_first(tmp_path, args):
    assert "cannot write in /proc" in _one_line_exit_2(cli(*args, cwd=tmp_path))
