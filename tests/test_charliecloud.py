"""The charliecloud runtime: what a descriptor may ask of it, the ch-run wrapper in job scripts,
and every site's Dockerfile through Charliecloud's own parser (``ch-image build --parse-only``),
whose Horovod step must be the project's build script with the site's CUDA architectures (the
GPU recipes build Horovod as .ci/run and the README do). The image build and a study inside it
under the real Slurm: tests/test_container_slurm.py."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli

from hpcscale.containers import chimage
from hpcscale.containers.recipe import BUILD, TORCH_CPU, TORCH_GPU
from hpcscale.sites import load_site, site_files
from hpcscale.sites.detect import resolve

ROOT = Path(__file__).resolve().parents[1]
SITES = sorted(site_files())
needs_ch_image = pytest.mark.skipif(
    not chimage.usable(),
    reason="needs Charliecloud's ch-image (.ci/run installs it: apt-get install charliecloud "
    "charliecloud-builders mmdebstrap)",
)


def _descriptor(folder: Path, container: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ch.yaml"
    path.write_text(
        "scheduler: {kind: slurm}\nlauncher: {kind: srun}\n"
        "node: {cpu: test, arch: x86_64, sockets: 1, cores_per_socket: 4, memory_gb: 8,\n"
        "       gpus: {model: NVIDIA A100, count: 2, memory_gb: 40, link: nvlink}}\n"
        f"limits: {{max_nodes: 2, max_walltime: '01:00:00'}}\ncontainer: {container}\n"
    )
    return path


@pytest.mark.parametrize(
    ("container", "field", "words"),
    [
        ("{runtime: charliecloud, image: 'docker://hpcscale:latest'}", "container.image",
         "not a registry reference"),
        ("{runtime: charliecloud, image: hpcscale/img:latest}", "container.image",
         "not a registry reference"),
        ("{runtime: charliecloud, image: /images/hpcscale.sqfs}", "container.image",
         "as directories"),
        ("{runtime: charliecloud, image: /images/h, binds: ['/scratch:/scratch:ro']}",
         "container.binds", "SRC or SRC:DST"),
        ("{runtime: dockerd, image: /images/h}", "container.runtime", "charliecloud"),
    ],
)  # fmt: skip
def test_descriptor_asks_what_charliecloud_cannot_do(tmp_path, container, field, words):
    path = _descriptor(tmp_path, container)
    res = cli("sites", "validate", str(path))
    assert res.returncode == 2, res.stdout + res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert str(path) in line and field in line and words in line, line
    assert "Traceback" not in res.stderr


def test_descriptor_charliecloud_ok(tmp_path):
    path = _descriptor(tmp_path, "{runtime: charliecloud, image: /images/h, binds: [/scratch]}")
    res = cli("sites", "validate", str(path))
    assert res.returncode == 0, res.stderr


def _launch_line(script: str) -> list[str]:
    (line,) = [ln for ln in script.splitlines() if ln.startswith("srun ")]
    return shlex.split(line)


def test_ranks_run_in_ch_run_with_study_and_data_bound(tmp_path):
    image = tmp_path / "img dir;x"  # a path the shell must not split or run
    image.mkdir()
    Path(f"{image}.sha256").write_text("sha256:" + "ab" * 32 + "\n")
    study, data = tmp_path / "study", tmp_path / "events"
    res = cli(
        *f"render --site local-slurm --ranks 2 --study {study} --data {data}".split(),
        "--image", str(image),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    argv = _launch_line(res.stdout)
    at = argv.index("ch-run")
    assert argv[at : at + 8] == [
        "ch-run", "--set-env", "-b", str(study), "-b", str(data), str(image), "--",
    ]  # fmt: skip
    assert argv[at + 8 : at + 12] == ["python3", "-u", "-m", "submitit.core._submit"]
    lines = res.stdout.splitlines()
    assert lines.index('export USER="${USER:-$(id -un)}"  # ch-run needs it') < len(lines) - 1
    assert f"export HPCSCALE_IMAGE_DIGEST=sha256:{'ab' * 32}" in lines
    assert "ch-fromhost" not in res.stdout  # no GPUs here
    res = cli("render", "--site", "local-slurm", "--ranks", "2", "--no-container", "--image", "x")
    assert res.returncode == 2 and "drop --no-container" in res.stderr


def test_gpu_job_injects_the_host_nvidia_libraries_once(tmp_path):
    _descriptor(tmp_path / "sites", "{runtime: charliecloud, image: /images/h}")
    res = cli(
        "render", "--site", "ch", "--gpus", "2", "--container",
        "--sites-dir", str(tmp_path / "sites"), "--study", str(tmp_path / "s"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    inject = lines.index("ch-fromhost --nvidia /images/h")
    (launch,) = [i for i, ln in enumerate(lines) if ln.startswith("srun ")]
    assert inject < launch
    assert f"ch-run --set-env -b {tmp_path / 's'} /images/h -- python3 -u" in lines[launch]


def test_submit_refuses_a_missing_image_in_one_line(tmp_path):
    res = cli(
        "submit", "--site", "local-slurm", "--ranks", "2", "--data", str(tmp_path),
        "--image", str(tmp_path / "nothing"), "--study", str(tmp_path / "s"),
    )  # fmt: skip
    if res.returncode == 2 and "ch-run" in res.stderr and "not on PATH" in res.stderr:
        pytest.skip("ch-run is not installed here (.ci/run installs charliecloud)")
    assert res.returncode == 2, res.stdout + res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "no image directory" in line and "hpcscale container build --site local-slurm" in line


# --- every site's Dockerfile through ch-image's parser ------------------------------------------


@pytest.fixture(scope="module")
def ch_storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ch") / "storage"  # ch-image makes it


def parse_dockerfile(path: Path, storage: Path, context: Path) -> list[tuple[str, str]]:
    """(instruction, text) in order, from ch-image's own parse tree (``-v --parse-only``)."""
    env = {**os.environ, "CH_IMAGE_STORAGE": str(storage), "USER": os.environ.get("USER", "root")}
    env["PATH"] = f"/usr/bin{os.pathsep}{env['PATH']}"  # Debian's python3 has lark
    res = subprocess.run(
        ["ch-image", "-v", "build", "--parse-only", "-f", str(path), str(context)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    tree = (res.stdout + res.stderr).splitlines()
    start = tree.index("  dockerfile")
    instructions: list[tuple[str, list[str]]] = []
    for line in tree[start + 1 :]:
        if re.match(r"^    \S", line):
            instructions.append((line.strip(), []))
        elif line.startswith("      ") and instructions:
            # a grammar rule (run_shell, copy_shell) alone, or with its value after a tab
            rule, _, value = line.strip().partition("\t")
            if value or not re.fullmatch(r"[a-z_]+", rule):
                instructions[-1][1].append(value or rule)
        elif not line.startswith("    "):
            break
    return [(kind, " ".join(body)) for kind, body in instructions if kind != "comment"]


def script_flags() -> set[str]:
    text = (ROOT / "scripts" / "build-horovod.sh").read_text()
    return set(re.findall(r"^\s+(--[a-z-]+)\)", text, flags=re.M))


@needs_ch_image
@pytest.mark.parametrize("name", SITES)
def test_dockerfile_parses_and_builds_horovod_with_the_script(name, fixed_local, ch_storage,
                                                              tmp_path):  # fmt: skip
    site = resolve(load_site(name))
    steps = parse_dockerfile(ROOT / "containers" / f"{name}.Dockerfile", ch_storage, tmp_path)
    kinds = [kind for kind, _ in steps]
    assert kinds[0] == "from_" and kinds.count("from_") == 1, kinds
    # every command of every RUN, in order, as (instruction index, words without VAR=value)
    commands = [
        (i, [w for w in shlex.split(part) if not re.fullmatch(r"[A-Z_]+=\S*", w)] or [""])
        for i, (kind, text) in enumerate(steps) if kind == "run"
        for part in text.split("&&")
    ]  # fmt: skip
    (horovod,) = [(n, c) for n, c in enumerate(commands) if "build-horovod.sh" in " ".join(c[1])]
    n, (at, words) = horovod
    assert words[:2] == ["bash", f"{BUILD}/build-horovod.sh"], words
    flags = [w for w in words[2:] if w.startswith("--")]
    assert set(flags) <= script_flags(), (flags, script_flags())
    gpus = site.node.gpus
    if gpus is None:
        assert "--cuda-cc" not in flags
    else:
        assert words[words.index("--cuda-cc") + 1] == gpus.cuda_archs
    assert ("--mpi" in flags) == (site.container.recipe == "cluster")
    # the script is copied in before; torch is installed before (Horovod builds against it)
    copies = [t for kind, t in steps[:at] if kind == "copy"]
    assert any(t.split()[:2] == ["src/scripts/build-horovod.sh", f"{BUILD}/build-horovod.sh"]
               for t in copies), copies  # fmt: skip
    before = [" ".join(c) for _, c in commands[:n]]
    if site.container.recipe == "local":
        assert any(f"{BUILD}/wheels/torch-*.whl" in c for c in before), before
    elif site.node.arch == "x86_64":
        wanted = TORCH_GPU if gpus else TORCH_CPU
        assert any(wanted in c for c in before), wanted
    else:  # ppc64le: torch and NCCL from conda-forge, and Horovod with that NCCL
        assert any("conda" in c and "pytorch" in c for c in before)
        assert words[words.index("--nccl-home") + 1] == "/usr/local/anaconda"
    assert steps[-1][0] == "uns_yet" and "hpcscale.train" in steps[-1][1]  # ENTRYPOINT


def test_unknown_gpu_model_needs_cuda_cc(tmp_path):
    sites = tmp_path / "sites"
    path = _descriptor(sites, "{runtime: charliecloud, image: /images/h}")
    # engine horovod: its CUDA build is what needs the compute capability
    path.write_text(path.read_text().replace("NVIDIA A100", "Vendor X9") + "engine: horovod\n")
    res = cli("container", "render", "--site", "ch", "--sites-dir", str(sites))
    assert res.returncode == 2
    assert "node.gpus.cuda_cc" in res.stderr and "'Vendor X9'" in res.stderr
    path.write_text(path.read_text().replace("link: nvlink}", "link: nvlink, cuda_cc: '86'}"))
    res = cli("container", "render", "--site", "ch", "--format", "docker", "--sites-dir",
              str(sites))  # fmt: skip
    assert res.returncode == 0 and "--cuda-cc 86 --mpi" in res.stdout


# --- a build after one that was killed part-way ---------------------------------------------

BUILD_ONCE = """
import sys
from pathlib import Path
from hpcscale.containers import chimage
chimage.build(Path(sys.argv[1]), "Dockerfile", "hpcscale-stale-test", print)
"""


@needs_ch_image
def test_build_recovers_the_copy_an_interrupted_build_left_changed(tmp_path):
    """A build killed between changing ch-image's copy of the image and committing it (Ctrl-C,
    a time limit) leaves that copy changed; the next build that needs an earlier cached state
    failed in ``git checkout`` (CI's storage, 2026-12-07). hpcscale deletes the copy and builds
    again from the cache."""
    storage, context = tmp_path / "storage", tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY a /a\nENV HPCSCALE_SITE=test\n")
    env = {**os.environ, "CH_IMAGE_STORAGE": str(storage), "USER": os.environ.get("USER", "root")}

    def build(content: str) -> subprocess.CompletedProcess[str]:
        (context / "a").write_text(content)
        return subprocess.run(
            [sys.executable, "-c", BUILD_ONCE, str(context)],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip

    first = build("one")
    assert first.returncode == 0, first.stdout + first.stderr[-2000:]
    copy = storage / "img" / "hpcscale-stale-test"
    # what a build killed in its ENV step leaves: the metadata changed, not committed
    (copy / "ch" / "environment").write_text("HPCSCALE_SITE=test\nPATH=/half/done\n")
    second = build("two")  # COPY misses: ch-image moves its copy back to the FROM state
    assert second.returncode == 0, second.stdout + second.stderr[-2000:]
    assert "left half-changed by an earlier build" in second.stdout
    assert (copy / "a").read_text() == "two"
    assert (copy / "ch" / "environment").read_text().split() == ["HPCSCALE_SITE=test"]
