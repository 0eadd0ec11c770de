"""The CLI as a user meets it: real subprocesses, exit codes and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli

ROOT = Path(__file__).resolve().parents[1]


def hpcscale(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hpcscale", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=120,
    )


def test_help_does_not_import_torch():
    code = "import sys; from hpcscale.cli import app; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert hpcscale("--help").returncode == 0


def test_sites_lists_seven():
    res = hpcscale("sites")
    assert res.returncode == 0
    for name in ("summitdev", "stampede2", "pizdaint", "pnnl", "titan", "endeavour", "local"):
        assert name in res.stdout


def test_sites_show_summitdev():
    res = hpcscale("sites", "show", "summitdev")
    assert res.returncode == 0
    head = res.stdout.splitlines()[:3]
    text = "\n".join(head)
    assert "ppc64le" in text and "4 × P100" in text and "LSF" in text and "04:00:00" in text


def test_render_summitdev_8_gpus():
    res = hpcscale("render", "--site", "summitdev", "--gpus", "8")
    assert res.returncode == 0, res.stderr
    assert "#BSUB -nnodes 2" in res.stdout
    assert "jsrun --nrs 8 " in res.stdout
    assert "#BSUB -W 04:00" in res.stdout


def test_render_pizdaint_4_gpus():
    res = hpcscale("render", "--site", "pizdaint", "--gpus", "4")
    assert "#SBATCH --nodes=4" in res.stdout and "#SBATCH --constraint=gpu" in res.stdout
    assert "srun --kill-on-bad-exit=1 --ntasks=4 " in res.stdout


def test_render_stampede2_2_nodes():
    res = hpcscale("render", "--site", "stampede2", "--nodes", "2")
    assert "#SBATCH --nodes=2" in res.stdout and "#SBATCH --ntasks-per-node=4" in res.stdout
    for line in (
        "HOROVOD_FUSION_THRESHOLD=134217728",
        "I_MPI_FABRICS=tmi",
        "I_MPI_TMI_PROVIDER=psm2",
        "OMP_NUM_THREADS=11",  # seed 002, four workers per node: intra-op 11, inter-op 2
        "KMP_BLOCKTIME=1",
    ):
        assert f"export {line}" in res.stdout
    assert "\nibrun " in res.stdout
    # the site's default workload: seed 002's 3DGAN
    assert "--model 3dgan --batch 8 --epochs 25 --target-loss 0.1" in res.stdout
    assert "--inter-threads 2" in res.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["render", "--site", "summitdev", "--gpus", "8", "--walltime", "05:00"], "04:00:00"),
        (["render", "--site", "summitdev", "--gpus", "400"], "at most 50 nodes"),
        (["render", "--site", "atlantis", "--gpus", "4"], "known sites: endeavour"),
    ],
)
def test_user_errors_are_one_line_exit_2(args, fragment):
    res = hpcscale(*args)
    assert res.returncode == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
    assert "Traceback" not in res.stderr


def test_verbose_shows_traceback():
    res = hpcscale("--verbose", "render", "--site", "summitdev", "--gpus", "400")
    assert res.returncode == 2 and "Traceback" in res.stderr


def test_sites_validate(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scheduler: {kind: sge}\n")
    res = hpcscale("sites", "validate", str(ROOT / "sites" / "pnnl.yaml"), str(bad))
    assert res.returncode == 2
    assert "ok: " in res.stdout
    assert "bad.yaml: scheduler.kind: Input should be 'slurm', 'lsf', 'pbs' or 'local'" in (
        res.stderr
    )


def test_render_out_file(tmp_path):
    target = tmp_path / "job.sh"
    res = hpcscale("render", "--site", "pnnl", "--gpus", "2", "--out", str(target))
    assert res.returncode == 0 and target.read_text().startswith("#!/bin/bash")


@pytest.mark.parametrize(
    ("sizes", "says"),
    [
        ("1,,2", "an empty entry"),
        ("1,2,", "an empty entry"),
        ("4,4", "size 4 given twice"),
        ("0,2", "must be positive"),
        ("1,two", "comma-separated integers"),
        ("1000000000", "has at most 32 nodes"),  # the site's limit, from the plan
    ],
)
def test_size_lists_are_read_strictly(tmp_path, sizes, says):
    args = ("submit", "--site", "pnnl", "--gpus", sizes, "--dry-run", "--study", "s")
    res = cli(*args, cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: ") and says in line
    assert not (tmp_path / "s").exists()  # nothing half-written


def test_render_prints_the_script_submit_dry_run_writes_for_every_job(tmp_path):
    """render = what submit submits, for a study with a model, options and a sweep: every
    job's script from `render --job LABEL` is the one `submit --dry-run` wrote."""
    from conftest import cli

    study = tmp_path / "s"
    args = ["--site", "local-slurm", "--ranks", "1,2", "--model", "scnet-small",
            "--sweep", "batch=2,4", "--study", str(study), "--epochs", "2"]  # fmt: skip
    done = cli("submit", *args, "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    labels = sorted(p.name for p in (study / "jobs").iterdir())
    assert labels == ["1r-batch2", "1r-batch4", "2r-batch2", "2r-batch4"]
    for label in labels:
        shown = cli("render", *args, "--job", label, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        written = (study / "jobs" / label / "job.sh").read_text()
        assert shown.stdout == written
        assert "--model scnet-small" in written and "--epochs 2" in written
        assert f"--batch {label.split('batch')[1]}" in written
    wrong = cli("render", *args, "--job", "9r", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "the study's jobs are 1r-batch2, 1r-batch4, 2r-batch2, 2r-batch4" in wrong.stderr
