"""A real image and a study inside it, under the real Slurm: `hpcscale container build --site
local-slurm` with Charliecloud's ch-image (on a Debian base that mmdebstrap makes, no registry
needed), then `hpcscale submit --site local-slurm --ranks 2 --image IMAGE`: srun starts both
ranks in `ch-run`, the summary carries the image's digest, and the losses equal a run of the
same study without the container. The image is built with the study's data set inside
(``--data``), and a third study reads that copy (``--data-placement image``): the same losses.

The image, ch-image's storage (its build cache) and the base are cached outside the repository
(``$HPCSCALE_CI_CACHE`` or ``~/.cache/hpcscale-ci``, like the Horovod wheel): a first build
takes a few minutes, a rebuild after a source change about a minute, an unchanged one seconds.
CI runs it (.ci/run installs Charliecloud and mmdebstrap, starts Slurm and sets
HPCSCALE_REAL_SLURM=1)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli, tiny_events

from hpcscale.containers import chimage

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slurm
if os.environ.get("HPCSCALE_REAL_SLURM") != "1":
    pytest.skip(
        "needs the real Slurm that .ci/slurm-up starts (HPCSCALE_REAL_SLURM=1)",
        allow_module_level=True,
    )


def ci_cache() -> Path:
    return Path(os.environ.get("HPCSCALE_CI_CACHE") or Path.home() / ".cache" / "hpcscale-ci")


def losses(job: Path) -> list[float]:
    """Rank 0's global (rank-averaged) loss after every step."""
    lines = (json.loads(line) for line in (job / "rank-0.jsonl").read_text().splitlines())
    return [r["global_loss"] for r in lines if r.get("kind") == "sync"]


def test_study_runs_inside_a_built_image_under_real_slurm(tmp_path):
    assert chimage.usable(), "ch-image does not start (.ci/run installs charliecloud)"
    image = ci_cache() / "images" / "local-slurm"
    env = {
        **os.environ,
        "CH_IMAGE_STORAGE": os.environ.get("CH_IMAGE_STORAGE") or str(ci_cache() / "ch-image"),
        "HPCSCALE_CACHE": str(ci_cache() / "hpcscale"),  # the Debian base tarball
    }
    data = tiny_events(tmp_path / "events", 200, seed=5)
    build = subprocess.run(
        [sys.executable, "-m", "hpcscale", "container", "build", "--site", "local-slurm",
         "--out", str(image), "--data", str(data)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1500,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr[-3000:]
    digest = Path(f"{image}.sha256").read_text().strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert digest in build.stdout and (image / "opt" / "venv" / "bin" / "python3").exists()
    record = json.loads(Path(f"{image}.json").read_text())
    last = build.stderr.splitlines()[-1]
    print(f"\nimage {image}: {record['size_bytes'] / 2**30:.2f} GiB, {digest}, "
          f"built in {record['build_s']} s; this call: {last}")  # fmt: skip

    assert record["data"]["source"] == str(data) and (image / "opt" / "hpcscale-data").is_dir()
    train = ["--model", "jishnet-small", "--epochs", "1", "--no-stop-at-target",
             "--ttl-window", "5"]  # fmt: skip
    studies = {}
    for name, extra in (
        ("plain", []),
        ("image", ["--image", str(image)]),
        ("data-in-image", ["--image", str(image), "--data-placement", "image"]),
    ):
        studies[name] = tmp_path / name
        res = cli(
            "submit", "--site", "local-slurm", "--ranks", "2", "--data", str(data),
            "--study", str(studies[name]), "--wait", *extra, *train,
            cwd=tmp_path, timeout=900,
        )  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr

    job = studies["image"] / "jobs" / "2r"
    assert (
        f"ch-run --set-env -b {studies['image']} -b {data} {image} -- python3 -u -m "
        in (job / "job.sh").read_text()
    )
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
    provenance = summary["provenance"]
    assert provenance["image"] == str(image) and provenance["image_digest"] == digest
    assert provenance["container"] == "charliecloud" and provenance["launcher"] == "srun"
    plain = json.loads((studies["plain"] / "jobs" / "2r" / "summary.json").read_text())
    assert plain["provenance"]["container"] is None and plain["provenance"]["image"] is None
    # the same seed, data, torch wheel and thread count: the same losses, step by step
    inside, outside = losses(job), losses(studies["plain"] / "jobs" / "2r")
    print(f"losses over {len(inside)} steps, in the image: {inside[-1]!r} (final), "
          f"without: {outside[-1]!r}")  # fmt: skip
    assert len(inside) >= 10 and len(inside) == len(outside)
    assert inside == pytest.approx(outside, rel=1e-6, abs=1e-7)
    assert summary["final_global_loss"] == pytest.approx(plain["final_global_loss"], rel=1e-6)

    # --data-placement image: the ranks read the image's copy (the data folder is not bound),
    # its lookup timed as DLT's placement part, and train on the same minibatches
    baked = studies["data-in-image"] / "jobs" / "2r"
    assert (
        f"ch-run --set-env -b {studies['data-in-image']} {image} -- "
        in (baked / "job.sh").read_text()
    )
    rows = [json.loads(line) for line in (baked / "rank-1.jsonl").read_text().splitlines()]
    (placed,) = [r for r in rows if r.get("phase") == "placed"]
    assert placed["path"] == "/opt/hpcscale-data"
    in_image = json.loads((baked / "summary.json").read_text())
    assert in_image["status"] == "completed" and "placement" in in_image["dlt_parts_s"]
    assert in_image["provenance"]["image_digest"] == digest
    assert losses(baked) == pytest.approx(outside, rel=1e-6, abs=1e-7)
