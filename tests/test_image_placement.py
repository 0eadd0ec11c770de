"""--data-placement image: the data set baked into the site's image (``hpcscale container build
--data DIR``, hpcscale/containers/imagedata.py), checked against the image's record before any
job is written, read inside the container by the ranks. What needs no builder is here; the build
and a study reading the image's copy under the real Slurm: tests/test_container_slurm.py."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from conftest import cli, tiny_events

from hpcscale.containers import imagedata
from hpcscale.containers.recipe import recipe
from hpcscale.errors import UserError
from hpcscale.sites import load_site
from hpcscale.sites.detect import resolve


def ch_site(image: Path):  # type: ignore[no-untyped-def]
    """local-slurm with its charliecloud container on, running ``image``."""
    site = resolve(load_site("local-slurm"))
    container = site.container.model_copy(update={"enabled": True, "image": str(image)})
    return site.model_copy(update={"container": container})


def fake_build(image: Path, data: Path) -> dict:
    """An image folder and the record a build with --data writes beside it."""
    image.mkdir()
    held = imagedata.copy_into(image.parent / "context", data)
    Path(f"{image}.json").write_text(json.dumps({"image": str(image), "data": held}))
    return held


def test_copy_into_copies_every_file_and_records_a_content_digest(tmp_path):
    data = tiny_events(tmp_path / "events", 40, seed=1)
    held = imagedata.copy_into(tmp_path / "ctx", data)
    names = imagedata.files(data)
    assert names and imagedata.files(tmp_path / "ctx" / "data") == names
    for name in names:
        assert (tmp_path / "ctx" / "data" / name).read_bytes() == (data / name).read_bytes()
    assert held["files"] == len(names) and held["path"] == imagedata.IMAGE_DATA
    assert held["bytes"] == sum((data / n).stat().st_size for n in names)
    again = imagedata.copy_into(tmp_path / "ctx2", data)
    assert again["digest"] == held["digest"]  # from the contents: the same set, the same digest
    (data / names[0]).write_bytes((data / names[0]).read_bytes()[:-1] + b"\x00")
    assert imagedata.copy_into(tmp_path / "ctx3", data)["digest"] != held["digest"]
    with pytest.raises(UserError, match="no such folder"):
        imagedata.copy_into(tmp_path / "ctx4", tmp_path / "nothing")
    with pytest.raises(UserError, match=r"no manifest\.json there"):
        imagedata.copy_into(tmp_path / "ctx5", tmp_path / "ctx")  # the context, not a data set


@pytest.mark.parametrize("fmt", ["docker", "singularity"])
def test_the_recipe_copies_the_data_set_after_hpcscale(fmt):
    site = ch_site(Path("/images/h"))
    plain, with_data = recipe(site, fmt), recipe(site, fmt, data=True)  # type: ignore[arg-type]
    assert imagedata.IMAGE_DATA not in plain
    line = "COPY data /opt/hpcscale-data" if fmt == "docker" else "data /opt/hpcscale-data"
    lines = with_data.splitlines()
    (at,) = [i for i, ln in enumerate(lines) if ln.strip() == line]
    install = max(i for i, ln in enumerate(lines) if "/opt/hpcscale" in ln and i != at)
    assert at > install  # another data set rebuilds only the layers after hpcscale's


def test_check_refuses_what_the_ranks_would_not_find(tmp_path):
    data = tiny_events(tmp_path / "events", 40, seed=1)
    image = tmp_path / "img"
    site = ch_site(image)
    imagedata.check(site, str(data), ["shared", "node-local"])  # no job asks: nothing to check
    with pytest.raises(UserError, match=r"holds no data set .* --data "):
        image.mkdir()
        imagedata.check(site, str(data), ["image"])
    image.rmdir()
    fake_build(image, data)
    imagedata.check(site, str(data), ["shared", "image"])  # the image holds this data set
    other = tiny_events(tmp_path / "other", 40, seed=2)
    with pytest.raises(UserError, match=re.escape(f"holds {data}, not --data {other}")):
        imagedata.check(site, str(other), ["image"])
    (data / "extra.h5").write_bytes(b"x" * 10)
    with pytest.raises(UserError, match=r"changed since image .* was built"):
        imagedata.check(site, str(data), ["image"])
    with pytest.raises(UserError, match="without a container image"):
        imagedata.check(resolve(load_site("local")), str(data), ["image"])


def test_a_rank_outside_the_image_is_told_so():
    if Path(imagedata.IMAGE_DATA).exists():
        pytest.skip(f"{imagedata.IMAGE_DATA} exists on this machine")
    with pytest.raises(UserError, match="no data set at /opt/hpcscale-data"):
        imagedata.in_image()


@pytest.mark.parametrize("command", ["run", "submit", "render"])
def test_a_site_without_an_image_refuses_it_in_one_line(tmp_path, command):
    data = tiny_events(tmp_path / "events", 40, seed=1)
    where = {"run": ["--out", "job"], "submit": ["--study", "s"], "render": ["--study", "s"]}[
        command
    ]
    res = cli(
        command, "--site", "local", "--ranks", "1", "--data", str(data), *where,
        "--model", "jishnet-small", "--data-placement", "image", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2, res.stdout + res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "--data-placement image: site local runs its ranks without a container image" in line
    assert not (tmp_path / "s").exists() and not (tmp_path / "job").exists()  # nothing written


def test_kfold_with_the_image_placement_is_refused(tmp_path):
    data = tiny_events(tmp_path / "events", 40, seed=1)
    res = cli(
        "submit", "--site", "local-slurm", "--ranks", "1", "--data", str(data), "--study", "s",
        "--kfold", "2", "--dry-run", "--image", str(tmp_path / "img"), "--model", "jishnet-small",
        "--data-placement", "image", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2, res.stdout + res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "--data-placement image with --kfold" in line and not (tmp_path / "s").exists()


def test_the_data_is_not_bound_where_every_job_reads_the_image(tmp_path):
    data = tiny_events(tmp_path / "events", 40, seed=1)
    (image := tmp_path / "img").mkdir()
    scripts = {}
    for placement in ("image", "shared"):
        study = tmp_path / placement
        res = cli(
            "submit", "--site", "local-slurm", "--ranks", "2", "--data", str(data),
            "--study", str(study), "--dry-run", "--image", str(image),
            "--model", "jishnet-small", "--data-placement", placement, cwd=tmp_path,
        )  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr
        (line,) = [ln for ln in (study / "jobs" / "2r" / "job.sh").read_text().splitlines()
                   if ln.startswith("srun ")]  # fmt: skip
        argv = shlex.split(line)
        at = argv.index("ch-run")
        scripts[placement] = argv[at : argv.index("--", at)]
    assert scripts["image"] == ["ch-run", "--set-env", "-b", str(tmp_path / "image"), str(image)]
    assert scripts["shared"] == [
        "ch-run", "--set-env", "-b", str(tmp_path / "shared"), "-b", str(data), str(image),
    ]  # fmt: skip
