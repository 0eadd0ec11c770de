"""Container recipes (golden, parsed by spython), `container build` with a fake apptainer, and a
containerised job under the fake scheduler whose summary carries the image digest."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import check_golden, cli, tiny_events, tiny_site

from hpcscale.containers.recipe import recipe
from hpcscale.sites import load_site, site_files
from hpcscale.sites.detect import resolve

ROOT = Path(__file__).resolve().parents[1]
SITES = sorted(site_files())
SUFFIX = {"singularity": "def", "docker": "Dockerfile"}


@pytest.mark.parametrize("fmt", ["singularity", "docker"])
@pytest.mark.parametrize("name", SITES)
def test_recipe_matches_golden(name, fmt, fixed_local, regen):
    text = recipe(resolve(load_site(name)), fmt)
    check_golden(ROOT / "containers" / f"{name}.{SUFFIX[fmt]}", text, regen)


@pytest.mark.parametrize("name", SITES)
def test_definition_parses_with_spython(name, fixed_local):
    from spython.main.parse.parsers import SingularityParser

    site = resolve(load_site(name))
    parsed = SingularityParser(str(ROOT / "containers" / f"{name}.def")).recipe
    (stage,) = parsed.values()
    gpu = site.node.gpus is not None
    local = site.container.recipe == "local"
    if local:
        assert stage.fromHeader == "debian:bookworm-slim"
    else:
        assert ("cuda" in stage.fromHeader) == gpu and ("oneapi" in stage.fromHeader) == (not gpu)
    assert f"org.hpcscale.site {name}" in stage.labels
    assert f"org.hpcscale.arch {site.node.arch}" in stage.labels
    script = "src/scripts/build-horovod.sh /var/tmp/hpcscale-build/build-horovod.sh"
    wanted = ["build /var/tmp/hpcscale-build"] if local else []
    assert stage.files == [*wanted, script, "src /opt/hpcscale"]
    assert "hpcscale.train" in stage.cmd
    install = "\n".join(stage.install)
    # Horovod through the one build script (it patches the sdist), with the site's GPUs
    assert "bash /var/tmp/hpcscale-build/build-horovod.sh" in install
    assert "CMAKE_CXX_STANDARD" not in install and "pip download" not in install
    assert ("--cuda-cc" in install) == gpu


def test_site_specific_mpi_and_arch():
    summitdev = recipe(load_site("summitdev"))
    assert "Linux-ppc64le.sh" in summitdev and "OpenMPI" in summitdev  # conda torch on ppc64le
    assert (
        "Intel(R) MPI" in recipe(load_site("stampede2"))
        or "intel-mpi" in recipe(load_site("stampede2")).lower()
    )
    assert "MPICH" in recipe(load_site("pizdaint"))
    pnnl = recipe(load_site("pnnl"))
    assert "UCX" in pnnl and "OpenMPI" in pnnl


def test_cli_render_summitdev_and_docker(tmp_path):
    res = cli("container", "render", "--site", "summitdev", timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("BootStrap: docker")
    assert "org.hpcscale.arch ppc64le" in res.stdout
    res = cli("container", "render", "--site", "pizdaint", "--format", "docker", timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("FROM nvcr.io/nvidia/cuda")


FAKE_APPTAINER = """#!{python}
import json, os, sys
log = os.environ["FAKE_RUNTIME_LOG"]
with open(log, "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[0] == "build":
    image = [a for a in args[1:] if not a.startswith("-")][0]
    open(image, "wb").write(b"fake image for " + image.encode())
    sys.exit(0)
assert args[0] == "exec", args
rest = args[1:]
while rest[0].startswith("-"):
    rest = rest[2:] if rest[0] in ("-B", "--bind") else rest[1:]
image, command = rest[0], rest[1:]
assert os.path.exists(image), image
os.execvp(command[0], command)
"""


@pytest.fixture
def fake_apptainer(tmp_path, monkeypatch):
    bin_dir = tmp_path / "runtime-bin"
    bin_dir.mkdir()
    exe = bin_dir / "apptainer"
    exe.write_text(FAKE_APPTAINER.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "runtime.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_RUNTIME_LOG", str(log))
    return log


def _without_builders() -> dict[str, str]:
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    env["PATH"] = os.pathsep.join(
        p
        for p in env["PATH"].split(os.pathsep)
        if not any(Path(p, b).exists() for b in ("apptainer", "singularity", "docker", "ch-image"))
    )
    return env


@pytest.mark.parametrize(
    ("site", "words"),
    [("pnnl", "install Apptainer"), ("local", "install Charliecloud")],
)
def test_build_without_builder_is_refused_in_one_line(tmp_path, site, words):
    out = tmp_path / "img"
    res = subprocess.run(
        [sys.executable, "-m", "hpcscale", "container", "build", "--site", site, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_without_builders(),
        timeout=120,
    )
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert words in line and f"hpcscale container render --site {site}" in line
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_build_with_fake_apptainer_records_digest(fake_apptainer, tmp_path):
    image = tmp_path / "img.sif"
    res = cli("container", "build", "--site", "pnnl", "--out", str(image), cwd=tmp_path,
              timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    (call,) = [json.loads(line) for line in fake_apptainer.read_text().splitlines()]
    fakeroot = [] if os.geteuid() == 0 else ["--fakeroot"]
    # built beside the image, then moved in place; the recipe in the assembled context
    assert call[: 1 + len(fakeroot)] == ["build", *fakeroot]
    assert call[-2] == str(tmp_path / ".img.sif.building") and call[-1].endswith("/hpcscale.def")
    digest = "sha256:" + hashlib.sha256(image.read_bytes()).hexdigest()
    assert Path(f"{image}.sha256").read_text().strip() == digest
    record = json.loads(Path(f"{image}.json").read_text())
    assert record["digest"] == digest and record["builder"] == "apptainer"
    assert Path(f"{image}.def").read_text().startswith("BootStrap: docker")
    assert digest in res.stdout
    assert "building with apptainer" in res.stderr  # progress lines


def test_containerised_job_under_fake_slurm(fake_scheduler, fake_apptainer, tmp_path):
    image = tmp_path / "img.sif"
    image.write_bytes(b"an image")
    Path(f"{image}.sha256").write_text("sha256:feedface\n")
    container = f"container: {{runtime: apptainer, image: '{image}', binds: ['{tmp_path}']}}\n"
    sites = tiny_site(
        tmp_path / "sites", "ctr", "events: 100, epochs: 1, target_loss: 1.7", container
    )
    data = tiny_events(tmp_path / "events", 100, seed=6)
    study = tmp_path / "study"
    res = cli(
        *f"submit --site ctr --ranks 2 --container --data {data} --study {study}".split(),
        "--wait",
        "--sites-dir",
        str(sites),
        "--ttl-window",
        "3",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    script = (study / "jobs" / "2r" / "job.sh").read_text()
    assert f"apptainer exec -B {tmp_path} {image} " in script
    execs = [json.loads(line) for line in fake_apptainer.read_text().splitlines()]
    assert len(execs) == 2 and all(e[0] == "exec" for e in execs)
    summary = json.loads((study / "jobs" / "2r" / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["provenance"]["image_digest"] == "sha256:feedface"
