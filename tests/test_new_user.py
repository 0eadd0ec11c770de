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
        cli(
            "submit",
            "--site",
            "local",
            "--ranks",
            "1",
            "--model",
            "scnet-small",
            "--study",
            "S",
            "--dry-run",
            cwd=work,
        )
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
    # a 2-rank job 3.28 times as fast as the 1-rank one: measured, but not a scaling win (3.28,
    # not 3.29: an efficiency of 164.5 % rounds to 164 or 165 with the float error of the ratio)
    one = json.loads((study / "jobs" / "1r" / "summary.json").read_text())
    path = study / "jobs" / "2r" / "summary.json"
    two = json.loads(path.read_text())
    two["epoch_rate_per_min"] = 3.28 * one["epoch_rate_per_min"]
    path.write_text(json.dumps(two))
    manifest = json.loads((study / "manifest.json").read_text())
    manifest["site"] = "../x"  # a site name from a damaged or hostile file
    (study / "manifest.json").write_text(json.dumps(manifest))
    ok(cli("report", "S", cwd=tmp_path))
    text = (study / "report" / "report.md").read_text()
    assert "Caveat: speed-up above N (N = 2: speed-up 3.28, efficiency 164 %)" in text
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
    # where each point's DLT goes, a row per job (a swept data placement shows up here)
    at = text.index("Where each job's DLT goes")
    header = next(ln for ln in text[at:].splitlines() if ln.startswith("| job"))
    assert all(f" {c} " in header for c in ("batch", "imports", "staging", "first step", "DLT"))
    assert text[at:].count("| 1r-batch") == 2


def test_output_piped_is_not_wrapped_at_80_columns(work):
    out = ok(cli("collect", "S", cwd=work))
    line = next(x for x in out.splitlines() if "wall clock over the training phase" in x)
    assert "after warm-up" in line


@pytest.mark.parametrize("ranks", ["4", "1000000000"])
def test_too_many_ranks_names_ranks(tmp_path, ranks, fixed_local):
    line = one_line_exit_2(
        cli(
            "submit", "--site", "local", "--ranks", ranks, "--dry-run", "--study", "R", cwd=tmp_path
        )
    )
    assert line.startswith(f"error: --ranks {ranks}: site local's node has")
    assert "cpus_per_task" not in line
    hint = line.split("use ")[1].split(" or fewer")[0]  # the next step it names: --ranks N
    ok(cli("submit", "--site", "local", *hint.split(), "--dry-run", "--study", "R", cwd=tmp_path))


# -- errors that lead somewhere ----------------------------------------------------------------


def test_data_of_another_kind_and_missing_data_name_the_workload(work, tmp_path):
    line = one_line_exit_2(
        cli("run", "--ranks", "1", "--data", "jets", "--model", "jishnet-small", cwd=work)
    )
    assert "jets holds cms-jets data (jets); this model trains on jishnet data" in line
    line = one_line_exit_2(
        cli("run", "--ranks", "1", "--data", "nojets", "--model", "cms-jets-small", cwd=tmp_path)
    )
    command = line.split("`")[1]  # the next step it names, run as given
    assert command == f"hpcscale data generate --workload cms-jets --out {tmp_path / 'nojets'}"
    ok(cli(*command.split()[1:], "--events", "20", cwd=tmp_path))


def test_a_misspelt_size_flag_is_named(tmp_path):
    line = one_line_exit_2(
        cli("submit", "--site", "local", "--rank", "1,2", "--dry-run", "--study", "Q", cwd=tmp_path)
    )
    assert "unknown option '--rank' (did you mean --ranks?)" in line


@pytest.mark.parametrize(
    ("model", "flag"),
    [("3dgan-small", "--cuda-graph"), ("scnet-small", "--cuda-graph"),
     ("jishnet-small", "--fused-first-block")],
)  # fmt: skip
def test_an_option_that_needs_a_gpu_is_refused_on_a_cpu_site(tmp_path, model, flag):
    """stampede2's nodes have no GPUs (its descriptor says so): refused before any job is
    written, even in a dry run; leaving the flag out is accepted."""
    base = ["submit", "--site", "stampede2", "--ranks", "2", "--model", model, "--dry-run"]
    line = one_line_exit_2(cli(*base, flag, "--study", "S", cwd=tmp_path))
    assert line == (
        f"error: {flag} needs a GPU; site stampede2's nodes have none (leave {flag} out, "
        "or use a site with GPUs)"
    )
    assert not (tmp_path / "S").exists()
    ok(cli(*base, "--study", "S", cwd=tmp_path))


def test_sites_dir_before_show_is_used(tmp_path):
    (tmp_path / "d").mkdir()
    shutil.copy(Path(__file__).parents[1] / "sites" / "local.yaml", tmp_path / "d" / "mine.yaml")
    out = ok(cli("sites", "--sites-dir", "d", "show", "mine", cwd=tmp_path))
    assert out.startswith("mine:")


def test_unquoted_walltime_says_quote_it(tmp_path):
    text = (Path(__file__).parents[1] / "sites" / "local.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace('max_walltime: "24:00:00"', "max_walltime: 12:00:00"))
    res = cli("sites", "validate", str(bad))
    assert res.returncode == 2
    assert "quote it (max_walltime: '12:00:00')" in res.stderr


def test_a_misspelt_search_space_key_lists_the_allowed_fields(tmp_path):
    (tmp_path / "space.yaml").write_text("lr: {low: 0.001, hihg: 0.01}\n")
    line = one_line_exit_2(
        cli(
            "optimize",
            "--site",
            "local",
            "--ranks",
            "1",
            "--space",
            "space.yaml",
            "--study",
            "Z",
            cwd=tmp_path,
        )
    )
    assert "lr.hihg: unknown field; allowed fields here: choices, high, log, low, type" in line


def test_a_pending_slurm_job_is_pending_when_sacct_does_not_know_it(tmp_path, monkeypatch):
    import os

    from hpcscale.schedulers.slurm import BACKEND

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sacct", ""), ("squeue", "echo PENDING")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert BACKEND.state(tmp_path / "submitit", "123") == "pending"


# -- bad input and damaged files ---------------------------------------------------------------


def test_aliases_are_bounded_by_what_they_expand_to(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    res = cli("sites", "validate", "bomb.yaml", cwd=tmp_path, timeout=60)
    assert res.returncode == 2 and "expand to over 100,000 values" in res.stderr


def test_a_truncated_summary_is_said(work, tmp_path):
    study = tmp_path / "T"
    shutil.copytree(work / "S", study, ignore=shutil.ignore_patterns("report"))
    path = study / "jobs" / "1r" / "summary.json"
    path.write_text(path.read_text()[:200])
    note = "summary.json was damaged (cut short or not JSON); rebuilt from the ranks' records"
    assert ok(cli("status", "T", cwd=tmp_path)).count(note) == 1
    assert ok(cli("collect", "T", cwd=tmp_path)).count(note) == 1
    ok(cli("report", "T", cwd=tmp_path))
    assert note in (study / "report" / "report.md").read_text()
    assert json.loads(path.read_text())["status"] == "completed"  # rebuilt completely


def test_a_deposit_outside_the_image_is_refused_before_the_ranks(tmp_path):
    import h5py
    from conftest import tiny_events

    data = tiny_events(tmp_path / "events", 30, seed=3)
    shard = sorted(data.glob("train-*.h5"))[0]
    with h5py.File(shard, "r+") as f:
        offsets = f["offsets"][...]
        f["wire"][int(offsets[2])] = 300  # event 2: one past the 300 × 300 image
    line = one_line_exit_2(
        cli("run", "--ranks", "1", "--data", "events", "--model", "jishnet-small", cwd=tmp_path)
    )
    assert "event 2 has a deposit outside the 300×300 image (wire 300)" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("rank-*"))


def test_the_first_rank_to_fail_by_time_is_the_cause(tmp_path):
    import os

    from hpcscale.train.records import summarize

    step = {"kind": "step", "step": 3, "t": 1.5, "loss": 1.0}
    for rank in (0, 1):
        (tmp_path / f"rank-{rank}.jsonl").write_text(json.dumps(step) + "\n")
    # rank 1 was killed (no status); torchrun then stopped rank 0, which said so
    status = {"status": "error", "reason": "stopped by SIGTERM"}
    (tmp_path / "rank-0.status.json").write_text(json.dumps(status))
    died = (tmp_path / "rank-1.jsonl").stat().st_mtime
    os.utime(tmp_path / "rank-0.status.json", (died + 1, died + 1))
    summary = summarize(tmp_path, 2, write=False)
    assert summary["failure"]["rank"] == 1, summary["failure"]
    assert "died without a status" in summary["failure"]["reason"]


# -- what a real site needs ------------------------------------------------------------------


def test_sites_schema_and_the_generated_field_reference():
    from hpcscale.sites.reference import PAGE, markdown, undocumented

    schema = json.loads(ok(cli("sites", "schema")))
    assert {"setup", "python", "scheduler", "limits"} <= set(schema["properties"])
    assert undocumented() == [], "describe these fields in hpcscale/sites/models.py"
    page = Path(__file__).parents[1] / PAGE
    assert page.read_text() == markdown(), (
        f"{PAGE} is stale: hpcscale sites schema --markdown > {PAGE}"
    )
    assert ok(cli("sites", "schema", "--markdown")) == page.read_text()


def test_a_field_without_description_is_found(monkeypatch):
    from pydantic.fields import FieldInfo

    from hpcscale.sites.models import Limits
    from hpcscale.sites.reference import undocumented

    bare = FieldInfo(annotation=int, default=1)
    monkeypatch.setitem(Limits.model_fields, "new_field", bare)
    assert undocumented() == ["Limits.new_field"]


@pytest.mark.parametrize("command", ["run", "submit"])
def test_horovod_ranks_start_the_way_that_works_here(work, tmp_path, command):
    pytest.importorskip("horovod")
    where = ["--out", "hv"] if command == "run" else ["--site", "local", "--study", "hv"]
    train = ["--model", "cms-jets-small", "--epochs", "1", "--batch", "4", "--engine", "horovod"]
    ok(cli(command, "--ranks", "2", "--data", str(work / "jets"), *train, *where, cwd=tmp_path))
    (summary,) = (tmp_path / "hv").rglob("summary.json")
    s = json.loads(summary.read_text())
    assert s["status"] == "completed" and s["world_size"] == 2
    assert s["provenance"]["engine"] == "horovod"


# -- every error names a next step that works ----------------------------------------------------


def _suggested_commands() -> list[str]:
    """Every `hpcscale ...` command the package's messages name (in backticks)."""
    import re

    package = Path(__file__).parents[1] / "hpcscale"
    found = set()
    for path in package.rglob("*.py"):
        found |= set(re.findall(r"`(hpcscale [^`\"\n]+)`", path.read_text()))
    return sorted(found)


@pytest.mark.parametrize("command", _suggested_commands())
def test_every_suggested_command_exists_with_its_options(command):
    """Each command a message suggests is a real command, and takes every option it is given
    (`hpcscale data generate --workload jets` was suggested and refused)."""
    words = command.split()[1:]
    if "--" in words:  # what follows is the user's own training command, not hpcscale's
        words = words[: words.index("--")]
    path = []
    for word in words:
        if not word.isalpha() or not word.islower():
            break
        path.append(word)
    help_text = ok(cli(*path, "--help"))
    for flag in (w for w in words if w.startswith("--") and w != "--help"):
        assert flag in help_text, f"{command}: `hpcscale {' '.join(path)}` has no {flag}"
    values = [w for w in words[len(path) :] if not w.startswith("-")]
    if "--workload" in words:  # a workload named in a suggestion is one data generate takes
        value = words[words.index("--workload") + 1]
        if "{" not in value:
            from hpcscale import workloads

            assert value in workloads.names(), command
    assert all(v for v in values)


def test_pbs_pro_custom_resources_go_into_the_select_chunk(tmp_path, fixed_local):
    text = (Path(__file__).parents[1] / "sites" / "endeavour.yaml").read_text()
    (tmp_path / "pbsite.yaml").write_text(
        text.replace(
            "scheduler:\n", "scheduler:\n  constraint: cpu_type=haswell&model=bro&bigmem\n", 1
        )
    )
    script = ok(cli("render", "--site", "pbsite", "--sites-dir", str(tmp_path), "--nodes", "1"))
    select = next(line for line in script.splitlines() if line.startswith("#PBS -l select="))
    assert select.endswith(":cpu_type=haswell:model=bro:bigmem=True"), select
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "pbsite.yaml").write_text(
        text.replace("scheduler:\n", "scheduler:\n  constraint: cpu_type=haswell&model=b*o\n", 1)
    )
    line = one_line_exit_2(
        cli("render", "--site", "pbsite", "--sites-dir", str(bad), "--nodes", "1")
    )
    assert "each name or name=value, all of them joined by & (e.g. cpu_type=haswell" in line


def test_container_cuda_and_torch_from_the_descriptor_and_horovod_for_horovod_only(fixed_local):
    from hpcscale.containers.recipe import recipe
    from hpcscale.sites import load_site
    from hpcscale.sites.detect import resolve

    site = resolve(load_site("pizdaint"))
    container = site.container.model_copy(update={"cuda": "12.4.1", "torch": "2.5.1"})
    text = recipe(site.model_copy(update={"container": container}))
    assert "From: nvcr.io/nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04" in text
    assert "torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124" in text
    assert "11.8" not in text and "build-horovod.sh" in text  # pizdaint's engine is horovod
    torch_only = recipe(site.model_copy(update={"container": container, "engine": "torch"}))
    assert "build-horovod.sh" not in torch_only and "horovod" not in torch_only.lower()


def test_run_help_says_how_to_pass_model_and_training_options():
    import sys

    text = " ".join(ok(cli("run", "--help")).split())
    assert "--model scnet-small --epochs 2" in text
    command = "python -m hpcscale.train --model NAME --help"
    assert command in text
    res = subprocess.run(
        [sys.executable, "-m", "hpcscale.train", "--model", "cms-jets-small", "--help"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0 and "--epochs" in res.stdout


@pytest.mark.parametrize("flag", ["--spec", "--file"])
def test_a_spec_file_given_as_an_option_names_the_first_argument(tmp_path, flag):
    (tmp_path / "s.yaml").write_text("site: local\nranks: [1]\n")
    line = one_line_exit_2(cli("submit", flag, "s.yaml", "--dry-run", cwd=tmp_path))
    assert f"unknown option '{flag}'" in line and "hpcscale submit FILE.yaml" in line
    assert list(tmp_path.iterdir()) == [tmp_path / "s.yaml"]  # nothing written
