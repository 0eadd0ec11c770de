"""What a new user tripped on (issue 31), as the commands they typed: the study folder is the one
source of truth (its spec and descriptor kept in it, a different spec refused in one line, a
dry run changes nothing, a figure of merit checked before any trial), reports shaped to the
study, and every error names a next step that works."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import cli

SPEC = "study.yaml"


def one_line_exit_2(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def ok(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, res.stdout + res.stderr
    assert "internal error" not in res.stdout + res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a small cms-jets data set and a completed 1- and 2-rank study of it."""
    top = tmp_path_factory.mktemp("newuser")
    ok(cli("data", "generate", "--workload", "cms-jets", "--events", "60", "--out", "jets",
           cwd=top))  # fmt: skip
    ok(cli("submit", "--site", "local", "--ranks", "1,2", "--model", "cms-jets-small",
           "--data", "jets", "--study", "S", "--epochs", "2", "--batch", "4", cwd=top))  # fmt: skip
    return top


# -- lost or wrong results -------------------------------------------------------------------


def test_collect_after_cancel_of_a_running_job(tmp_path, work):
    shutil.copytree(work / "jets", tmp_path / "jets")
    ok(cli("submit", "--site", "local", "--ranks", "1", "--model", "cms-jets-small", "--data",
           "jets", "--study", "C", "--epochs", "50", "--batch", "4", "--no-wait",
           cwd=tmp_path))  # fmt: skip
    records = tmp_path / "C" / "jobs" / "1r" / "rank-0.jsonl"
    for _ in range(600):  # until the steady state has steps to measure (no timed assertion)
        text = records.read_text() if records.exists() else ""
        if text.count('"kind": "sync"') + text.count('"kind":"sync"') >= 9:
            break
        time.sleep(0.2)
    ok(cli("cancel", "C", cwd=tmp_path))
    out = ok(cli("collect", "C", cwd=tmp_path))
    assert "1r" in out and "steady state:" in out
    assert "step None" not in out  # the last record in words


def test_dry_run_never_changes_the_study_and_another_model_is_refused(work):
    before = (work / "S" / SPEC).read_text()
    line = one_line_exit_2(
        cli("submit", "--site", "local", "--ranks", "1", "--model", "scnet-small", "--study", "S",
            "--dry-run", cwd=work)  # fmt: skip
    )
    assert "model cms-jets-small → scnet-small" in line
    assert "options --epochs 2 --batch 4 → none" in line and "--resubmit" in line
    assert (work / "S" / SPEC).read_text() == before
    # other sizes in a dry run: scripts only, the kept spec stays as it was
    ok(cli("submit", "--like", "S", "--ranks", "1", "--study", "S", "--dry-run", cwd=work))
    assert (work / "S" / SPEC).read_text() == before
    # --resubmit asks for it: the dry run still changes nothing
    ok(cli("submit", "--site", "local", "--ranks", "1", "--model", "scnet-small", "--study", "S",
           "--dry-run", "--resubmit", cwd=work))  # fmt: skip
    assert (work / "S" / SPEC).read_text() == before
    assert (work / "S" / "jobs" / "1r" / "summary.json").exists()  # nor its jobs
    assert "completed" in ok(cli("status", "S", cwd=work))
    # the suggested next step works: repeat it with --like in a new folder
    ok(cli("submit", "--like", "S", "--study", "S-again", "--dry-run", cwd=work))
    assert "model: cms-jets-small" in (work / "S-again" / SPEC).read_text()


def test_optimize_objective_is_checked_before_any_trial(work, tmp_path):
    (tmp_path / "space.yaml").write_text("lr: {low: 0.001, high: 0.01, log: true}\n")
    args = ["optimize", "--site", "local", "--ranks", "1", "--model", "cms-jets-small",
            "--data", str(work / "jets"), "--space", "space.yaml", "--trials", "1",
            "--study", "O", "--epochs", "1", "--batch", "4"]  # fmt: skip
    line = one_line_exit_2(cli(*args, "--objective", "roc_auc", cwd=tmp_path))
    assert "--objective 'roc_auc'" in line and "did you mean val_auc?" in line
    assert not (tmp_path / "O").exists()  # nothing submitted, nothing kept
    # the name it suggests is taken, in the same folder
    out = ok(cli(*args, "--objective", "val_auc", cwd=tmp_path))
    assert "best" in out and "val_auc" in out


def test_method_and_direction_choices_in_help():
    out = " ".join(ok(cli("optimize", "--help")).split())
    assert "--method [gp|evolution]" in out and "--direction [maximize|minimize]" in out


def test_a_study_keeps_its_descriptor(tmp_path):
    sites = tmp_path / "mysites"
    sites.mkdir()
    (sites / "mine.yaml").write_text(
        "scheduler: {kind: local, exclusive: false}\nlauncher: {kind: local}\n"
        "container: {runtime: charliecloud, image: mine-image, recipe: local}\n"
        "engine: torch\ndetect: true\nlimits: {max_nodes: 1, max_walltime: '01:00:00'}\n"
        "training: {model: cms-jets-small}\n"
    )
    line = one_line_exit_2(
        cli("submit", "--site", "mine", "--ranks", "1", "--dry-run", "--study", "M", cwd=tmp_path)
    )
    assert "--sites-dir DIR (or set HPCSCALE_SITES_PATH) with DIR/mine.yaml" in line
    # the step it names works
    ok(cli("submit", "--site", "mine", "--sites-dir", "mysites", "--ranks", "1", "--dry-run",
           "--study", "M", cwd=tmp_path))  # fmt: skip
    assert (tmp_path / "M" / "site" / "mine.yaml").read_text() == (sites / "mine.yaml").read_text()
    shutil.rmtree(sites)  # from here on, the study folder is all there is
    ok(cli("submit", "--like", "M", "--study", "M2", "--dry-run", cwd=tmp_path))
    assert (tmp_path / "M2" / "site" / "mine.yaml").exists()
    recipe = ok(cli("container", "render", "--study", "M", cwd=tmp_path))
    assert "FROM" in recipe.upper()


def test_report_of_a_cms_jets_study(work, tmp_path):
    study = tmp_path / "S"
    shutil.copytree(work / "S", study, ignore=shutil.ignore_patterns("report"))
    # a 2-rank job 3.29 times as fast as the 1-rank one: measured, but not a scaling win
    one = json.loads((study / "jobs" / "1r" / "summary.json").read_text())
    path = study / "jobs" / "2r" / "summary.json"
    two = json.loads(path.read_text())
    two["epoch_rate_per_min"] = 3.29 * one["epoch_rate_per_min"]
    path.write_text(json.dumps(two))
    manifest = json.loads((study / "manifest.json").read_text())
    manifest["site"] = "../x"  # a site name from a damaged or hostile file
    (study / "manifest.json").write_text(json.dumps(manifest))
    ok(cli("report", "S", cwd=tmp_path))
    text = (study / "report" / "report.md").read_text()
    assert "Caveat: speed-up above N (N = 2: speed-up 3.29, efficiency 164 %)" in text
    assert "paper" not in text.lower() and "γ" not in text  # JishNet's rows, LArTPC classes
    assert "ROC-AUC vs batch size" not in text  # one batch size
    assert "## S: ../x cms-jets-small" in text  # labelled by folder
    for name in (p.name for p in (study / "report").iterdir()):
        assert "/" not in name and ".." not in name
    assert "loss_.._x-" not in text and "loss__x-" in text


def test_no_speed_ups_between_the_points_of_a_sweep(work, tmp_path):
    ok(cli("submit", "--site", "local", "--ranks", "1", "--model", "cms-jets-small", "--data",
           str(work / "jets"), "--study", "W", "--epochs", "1", "--sweep", "batch=2,4",
           cwd=tmp_path))  # fmt: skip
    ok(cli("report", "W", cwd=tmp_path))
    text = (tmp_path / "W" / "report" / "report.md").read_text()
    assert "speed-up" not in text and "efficiency" not in text
    assert "ROC-AUC vs batch size" in text  # two batch sizes: the plot means something


def test_output_piped_is_not_wrapped_at_80_columns(work):
    out = ok(cli("collect", "S", cwd=work))
    line = next(x for x in out.splitlines() if "wall clock over the training phase" in x)
    assert "after warm-up" in line


@pytest.mark.parametrize("ranks", ["4", "1000000000"])
def test_too_many_ranks_names_ranks(tmp_path, ranks, fixed_local):
    line = one_line_exit_2(
        cli("submit", "--site", "local", "--ranks", ranks, "--dry-run", "--study", "R",
            cwd=tmp_path)  # fmt: skip
    )
    assert line.startswith(f"error: --ranks {ranks}: site local's node has")
    assert "cpus_per_task" not in line
    hint = line.split("use ")[1].split(" or fewer")[0]  # the next step it names: --ranks N
    ok(cli("submit", "--site", "local", *hint.split(), "--dry-run", "--study", "R", cwd=tmp_path))
