"""Studies beyond a size sweep (issue 20): the study spec, sweeps, K-fold splits and fold data
sets, the evolutionary step, the search space, an optimisation that resumes without running a
finished trial again, and the CLI's refusals of bad spec, sweep and search-space input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import cli, tiny_events, tiny_site

from hpcscale.data import files
from hpcscale.data.folds import assign, fold_sets
from hpcscale.data.manifest import read_manifest
from hpcscale.fsutil import atomic_write_json, folder_lock
from hpcscale.optimize import driver, evolution
from hpcscale.optimize.space import decode, encode
from hpcscale.plan import Request
from hpcscale.sites import load_site
from hpcscale.sites.detect import resolve
from hpcscale.spec import Optimize, StudySpec, parse_sweep
from hpcscale.study import JobRecord, create_study, load, save
from hpcscale.submission import Point, resolve_job

# --- K-fold -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "k"), [(10, 2), (90, 3), (1001, 7), (5, 5)])
def test_fold_split_is_disjoint_complete_balanced_and_deterministic(n, k):
    folds = assign(n, k, seed=3)
    assert folds.shape == (n,) and set(folds.tolist()) == set(range(k))  # every event, once
    sizes = np.bincount(folds, minlength=k)
    assert sizes.sum() == n and sizes.max() - sizes.min() <= 1
    assert np.array_equal(folds, assign(n, k, seed=3))  # deterministic
    assert not np.array_equal(assign(n, k, seed=3), assign(n, k, seed=4)) or n == k
    assert not np.array_equal(folds, np.arange(n) % k) or n == k  # shuffled, not striped


def test_fold_data_sets_hold_each_event_once_as_validation(tmp_path):
    data = tiny_events(tmp_path / "events", 45, seed=1)
    source = read_manifest(data, "lartpc")

    def events(m, split):
        return sorted((lab, int(c.sum() * 1000)) for lab, _, _, c in files.iter_events(m, split))

    every = sorted(events(source, "train") + events(source, "val"))
    folders = fold_sets(data, 3, tmp_path / "folds")
    vals = []
    for i, folder in enumerate(folders):
        m = read_manifest(folder, "lartpc")
        files.check_shards(m)
        meta = json.loads((folder / "manifest.json").read_text())
        assert meta["kfold"]["fold"] == i and meta["splits"]["val"] == m.count("val")
        val, train = events(m, "val"), events(m, "train")
        assert sorted(val + train) == every  # complete: the fold and the rest are all events
        vals.append(val)
    assert sorted(v for val in vals for v in val) == every  # each event validates exactly once
    stamp = (tmp_path / "folds" / "parts" / "fold-0.h5").stat().st_mtime_ns
    assert fold_sets(data, 3, tmp_path / "folds") == folders  # made once, then reused
    assert (tmp_path / "folds" / "parts" / "fold-0.h5").stat().st_mtime_ns == stamp


# --- evolution and the search space -----------------------------------------------------------


def test_selection_keeps_the_fittest_in_either_direction():
    scored = [(np.array([x]), v) for x, v in [(0.1, 3.0), (0.2, 9.0), (0.3, 1.0), (0.4, 5.0)]]
    best = evolution.fittest(scored, 2, maximize=True)
    assert [float(x[0]) for x in best] == [0.2, 0.4]
    worst = evolution.fittest(scored, 2, maximize=False)
    assert [float(x[0]) for x in worst] == [0.3, 0.1]


def test_children_interpolate_between_two_parents_without_mutation():
    rng = np.random.default_rng(0)
    parents = [np.array([0.2, 0.9]), np.array([0.6, 0.1])]
    kids = evolution.children(parents, 200, rng, mutation=0.0)
    lo, hi = np.minimum(*parents), np.maximum(*parents)
    assert np.all(kids >= lo - 1e-12) and np.all(kids <= hi + 1e-12)  # inside the parents' box
    assert kids.std(axis=0).min() > 0.05  # random interpolation, not the midpoint
    spread = np.abs(evolution.children(parents, 200, rng, mutation=0.05) - kids).mean()
    assert 0 < spread < 0.5  # mutation moves them, a little


def test_mutation_stays_within_bounds_and_decodes_inside_the_ranges():
    space = Optimize.model_validate(
        {"space": {"lr": {"low": 1e-5, "high": 1e-1, "log": True},
                   "batch": {"low": 4, "high": 64, "type": "int"},
                   "optimizer": {"choices": ["adam", "adamw", "sgd"]}}}
    ).space  # fmt: skip
    rng = np.random.default_rng(1)
    parents = [np.zeros(3), np.ones(3), np.full(3, 0.5)]
    kids = evolution.children(parents, 500, rng, mutation=0.8)  # wild mutations
    assert kids.min() >= 0.0 and kids.max() <= 1.0
    for kid in kids:
        p = decode(space, kid)
        assert 1e-5 <= p["lr"] <= 1e-1 and 4 <= p["batch"] <= 64
        assert isinstance(p["batch"], int) and p["optimizer"] in ("adam", "adamw", "sgd")
    ends = decode(space, np.array([0.0, 1.0, 0.99]))
    assert ends == {"lr": 1e-5, "batch": 64, "optimizer": "sgd"}
    mid = decode(space, np.array([0.5, 0.5, 0.5]))
    assert mid["lr"] == pytest.approx(1e-3, rel=1e-4)  # a log range is uniform in its log
    assert np.allclose(encode(space, mid)[:1], [0.5], atol=1e-4)


def test_a_generation_is_made_again_the_same_from_the_same_history():
    history = [(np.array([u]), float(u)) for u in (0.1, 0.5, 0.9, 0.3)]
    args = {"population": 2, "mutation": 0.05, "maximize": True, "seed": 7}
    first = evolution.generation(history, 1, 4, 1, **args)
    assert np.array_equal(first, evolution.generation(history, 1, 4, 1, **args))
    assert not np.array_equal(first, evolution.generation(history, 2, 4, 1, **args))
    # bred from the two fittest (0.9, 0.5): children between them, give or take the mutation
    assert first.min() > 0.5 - 0.25 and first.max() <= 1.0
    zero = evolution.generation([], 0, 5, 3, **args)
    assert zero.shape == (5, 3) and zero.min() >= 0 and zero.max() <= 1


# --- the study spec ---------------------------------------------------------------------------


def test_sweep_grid_labels_and_arguments():
    from hpcscale.launch import points

    spec = StudySpec(site="local", ranks=[1, 2], sweep=parse_sweep(["batch=4,8", "lr=1e-3"]))
    got = [(p.label, p.args) for p in points(spec, Path("/s"))]
    assert got == [
        ("1r-batch4-lr0.001", ("--batch", "4", "--lr", "0.001")),
        ("1r-batch8-lr0.001", ("--batch", "8", "--lr", "0.001")),
        ("2r-batch4-lr0.001", ("--batch", "4", "--lr", "0.001")),
        ("2r-batch8-lr0.001", ("--batch", "8", "--lr", "0.001")),
    ]
    folds = points(StudySpec(site="local", ranks=[2], kfold=3), Path("/s"))
    assert [(p.label, p.fold, p.data) for p in folds] == [
        (f"2r-fold{i}", i, f"/s/folds/fold-{i}") for i in range(3)
    ]
    assert [p.label for p in points(StudySpec(site="local", ranks=[1, 2]), Path("/s"))] == [
        None, None,  # a plain size keeps its label (1r, 2r)
    ]  # fmt: skip


def test_a_switch_is_swept_as_its_flag_and_its_no_form(tmp_path):
    """--sweep cuda_graph=true,false: the core's switches (argparse's --x / --no-x) are swept
    like any option, from the command line and from a spec file's YAML booleans alike."""
    from hpcscale.launch import points

    swept = parse_sweep(["stop_at_target=true,False", "batch=4"])
    assert swept == {"stop_at_target": [True, False], "batch": [4]}
    spec = StudySpec(site="local", ranks=[1], sweep=swept)
    assert [(p.label, p.args) for p in points(spec, Path("/s"))] == [
        ("1r-stop_at_targettrue-batch4", ("--stop-at-target", "--batch", "4")),
        ("1r-stop_at_targetfalse-batch4", ("--no-stop-at-target", "--batch", "4")),
    ]
    data = tiny_events(tmp_path / "events", 40, seed=1)
    (tmp_path / "spec.yaml").write_text(
        f"site: local\nranks: [1]\nmodel: jishnet-small\ndata: {data}\n"
        "sweep: {stop_at_target: [true, false]}\n"
    )
    res = cli("submit", str(tmp_path / "spec.yaml"), "--study", str(tmp_path / "s"),
              "--dry-run")  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    script = (tmp_path / "s" / "jobs" / "1r-stop_at_targetfalse" / "job.sh").read_text()
    assert "--no-stop-at-target" in script


# --- optimisation: resume ---------------------------------------------------------------------


class FakeTrials:
    """Stands in for submission: a trial "runs" as a live process (this one) until ``finish``
    writes its summary; the figure is a smooth function of lr with its peak at 1e-2."""

    def __init__(self, study: Path, interrupt_after: int | None = None) -> None:
        self.study, self.submitted, self.interrupt_after = study, [], interrupt_after
        self.running = interrupt_after is not None  # leave every other trial running

    def __call__(self, site, job, study, data, command):  # type: ignore[no-untyped-def]
        point = job.point
        self.submitted.append(point.label)
        record = JobRecord(label=point.label, gpus=0, ranks=1, nodes=1, walltime_s=600,
                           folder=f"jobs/{point.label}", script="job.sh", job_id=str(os.getpid()),
                           state="submitted", params=point.params, args=list(point.args),
                           trial=point.trial, generation=point.generation)  # fmt: skip
        with folder_lock(study, command):
            manifest = load(study)
            manifest.jobs.append(record)
            save(study, manifest)
        if len(self.submitted) % 2 or not self.running:  # every other one ends at once
            self.finish(point.label, point.params)
        return record, None

    def sleep(self, seconds: float) -> None:
        """The optimiser waits for its trials: here it is killed, once enough were submitted."""
        if self.interrupt_after is not None and len(self.submitted) >= self.interrupt_after:
            raise KeyboardInterrupt

    def finish(self, label: str, params: dict) -> None:
        value = 1.0 - abs(np.log10(params["lr"]) + 2.0) / 3.0
        atomic_write_json(self.study / "jobs" / label / "summary.json",
                          {"status": "completed", "val_accuracy": value})  # fmt: skip


@pytest.mark.parametrize("method", ["evolution", "gp"])
def test_an_interrupted_search_resumes_without_running_a_trial_twice(
    method, tmp_path, fixed_local, monkeypatch
):
    site = resolve(load_site("local"))
    study = tmp_path / "study"
    space = {"lr": {"low": 1e-4, "high": 1e-1, "log": True}}
    opt = {"method": method, "space": space, "trials": 6, "parallel": 2, "population": 3}
    spec = StudySpec(site="local", ranks=[1], optimize=opt)  # type: ignore[arg-type]
    create_study(study, site, {}, "optimize")
    shape = resolve_job(site, Point(Request(ranks=1)), site.training.model, [])
    first = FakeTrials(study, interrupt_after=3)
    monkeypatch.setattr(driver, "submit_point", first)
    monkeypatch.setattr(driver.time, "sleep", first.sleep)
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        driver.run(spec, site, study, "data", shape, said.append, poll_s=0.01)
    n = len(first.submitted)
    assert 3 <= n < 6 and first.submitted == [f"t00{i}" for i in range(n)]
    running = [r.label for r in load(study).jobs if r.state == "running"]
    assert running  # it was killed with trials running
    # while the optimiser was away, the trials it left running finished
    for r in load(study).jobs:
        if not (study / r.folder / "summary.json").exists():
            first.finish(r.label, r.params)
    second = FakeTrials(study)
    monkeypatch.setattr(driver, "submit_point", second)
    monkeypatch.setattr(driver.time, "sleep", second.sleep)
    said.clear()
    trials = driver.run(spec, site, study, "data", shape, said.append, poll_s=0.01)
    assert second.submitted == [f"t00{i}" for i in range(n, 6)]  # only what the budget lacked
    assert said[0] == f"resuming: {n} of 6 trials finished, 0 running"
    assert [t.label for t in trials] == [f"t00{i}" for i in range(6)]
    assert all(t.state == "completed" and t.value is not None for t in trials)
    assert sum(line.startswith("trial t") for line in said) == 6
    if method == "evolution":  # generation 0 (3 random), then one generation bred from it
        assert [t.generation for t in trials] == [0, 0, 0, 1, 1, 1]
    top = driver.best(trials, maximize=True)
    assert top is not None and top.value == max(t.value for t in trials)  # type: ignore[misc]


# --- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--sweep", "batch"], "--sweep 'batch': expected OPTION=V1,V2"),
        (["--sweep", "batch=4,$(id)"], "sweep.batch: value '$(id)' is not a plain token"),
        (["--sweep", "batch=4,4"], "sweep.batch: a value is given twice"),
        (["--sweep", "data=a,b"], "sweep.data: cannot be swept"),
        (["--sweep", "batch=4,x"], "--sweep: job 2r-batchx: training option argument --batch"),
        (["--sweep", "nosuch=1,2"], "job 2r-nosuch1: unknown option '--nosuch'"),
        (["--kfold", "1"], "--kfold"),
    ],
)
def test_bad_sweeps_are_one_line_and_write_nothing(args, said, tmp_path):
    res = cli("submit", "--site", "local", "--ranks", "2", "--dry-run", "--study", "s", *args,
              cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert said in res.stderr and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("lr: {low: 0.1, high: 0.01}", "lr: low 0.1 must be below high 0.01"),
        ("lr: {low: 0, high: 1, log: true}", "lr: a log range needs low > 0"),
        ("lr: {low: 0.1, high: 1, scale: log}", "lr.scale: unknown field"),
        ("lr: {choices: [a, 'b c']}", "lr: choice 'b c': a choice is a plain token"),
        ("[1, 2]", "a search space is a YAML mapping"),
        ("nosuch: {low: 1, high: 2}", "search space option nosuch: unknown option '--nosuch'"),
    ],
)
def test_bad_search_spaces_name_the_file_and_field(text, said, tmp_path):
    (tmp_path / "space.yaml").write_text(text + "\n")
    res = cli("optimize", "--site", "local", "--ranks", "1", "--space", "space.yaml",
              "--study", "s", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2 and said in res.stderr, res.stderr
    assert "space.yaml" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "s").exists()


def test_spec_file_runs_and_like_repeats_it_on_another_site(tmp_path, fake_scheduler):
    (tmp_path / "sd.yaml").write_text(
        "site: summitdev\ngpus: [4, 8]\nmodel: jishnet-small\nsweep: {batch: [4, 8]}\n"
    )
    res = cli("submit", "sd.yaml", "--dry-run", "--study", "sd", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert {p.name for p in (tmp_path / "sd" / "jobs").iterdir()} == {
        "4g-batch4", "4g-batch8", "8g-batch4", "8g-batch8"}  # fmt: skip
    manifest = json.loads((tmp_path / "sd" / "manifest.json").read_text())
    assert manifest["kind"] == "sweep"
    assert manifest["jobs"][1]["args"] == ["--batch", "8"]
    res = cli("submit", "--like", "sd", "--site", "pizdaint", "--dry-run", "--study", "pd",
              cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    kept = (tmp_path / "pd" / "study.yaml").read_text()
    assert "site: pizdaint" in kept and "batch:" in kept and "jishnet-small" in kept
    assert "#SBATCH" in (tmp_path / "pd" / "jobs" / "8g-batch8" / "job.sh").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: local\nranks: [1]\nkfold: 3\nfolds: 2\n")
    res = cli("submit", "bad.yaml", "--dry-run", cwd=tmp_path)
    assert res.returncode == 2 and "bad.yaml: folds: unknown field" in res.stderr, res.stderr


def test_kfold_study_through_fake_slurm_reports_mean_and_std(fake_scheduler, tmp_path):
    sites = tiny_site(tmp_path / "sites", "fake-slurm", "events: 90, epochs: 1, target_loss: 1.7")
    data = tiny_events(tmp_path / "events", 90, seed=4)
    study = tmp_path / "kf"
    res = cli("submit", "--site", "fake-slurm", "--ranks", "1", "--kfold", "3", "--data",
              str(data), "--study", str(study), "--wait", "--ttl-window", "3", "--sites-dir",
              str(sites), cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(fake_scheduler.calls("sbatch")) == 3
    assert "val acc over 3 of 3 folds:" in " ".join(res.stdout.split())
    for i in range(3):
        summary = json.loads((study / "jobs" / f"1r-fold{i}" / "summary.json").read_text())
        assert summary["status"] == "completed"
        assert summary["data"]["folder"] == str(study / "folds" / f"fold-{i}")
        assert summary["val_events"] == 30  # the fold: a third of the 90 events
    res = cli("report", str(study), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    text = (study / "report" / "report.md").read_text()
    assert "## K-fold cross-validation" in text and "| mean ± std | 3 of 3 folds |" in text
    assert "## Scaling laws" not in text  # one size: nothing to fit
    res = cli("status", str(study), cwd=tmp_path)
    assert res.returncode == 0 and "fold 2" in res.stdout


def test_requests_model_matches_site_request_fields():
    from hpcscale.schedulers.base import REQUEST_FIELDS
    from hpcscale.spec import Requests

    # partition and account come from the site's descriptor, as for `submit`'s options
    assert set(Requests().scheduler()) == set(REQUEST_FIELDS) - {"partition", "account"}


def test_optimize_spec_is_refused_by_submit_and_kept_for_resume(tmp_path):
    (tmp_path / "o.yaml").write_text(
        "site: local\nranks: [1]\noptimize: {space: {lr: {low: 1.0e-4, high: 0.1, log: true}}}\n"
    )
    res = cli("submit", "o.yaml", "--dry-run", cwd=tmp_path)
    assert res.returncode == 2 and "run it with `hpcscale optimize`" in res.stderr
    res = cli("optimize", "o.yaml", "--trials", "0", cwd=tmp_path)
    assert res.returncode == 2 and "--trials" in res.stderr
