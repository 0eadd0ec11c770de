"""Descriptor validation: every bad input names the field and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import cli

from hpcscale.errors import DescriptorError, UnknownSiteError
from hpcscale.sites import load_file, load_site, site_files
from hpcscale.sites.models import walltime_seconds

GOOD = {
    "scheduler": {"kind": "slurm", "partition": "gpu"},
    "launcher": {"kind": "srun"},
    "node": {
        "cpu": "Xeon",
        "arch": "x86_64",
        "sockets": 2,
        "cores_per_socket": 8,
        "memory_gb": 64,
        "gpus": {"model": "P100", "count": 2, "memory_gb": 12, "link": "pcie"},
    },
    "limits": {"max_nodes": 4, "max_walltime": "04:00:00"},
}


def write(tmp_path: Path, data: dict, name: str = "mysite") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def with_change(path: str, value) -> dict:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    *parents, last = path.split(".")
    target = data
    for key in parents:
        target = target[key]
    target[last] = value
    return data


def error_for(tmp_path: Path, data: dict) -> str:
    with pytest.raises(DescriptorError) as info:
        load_file(write(tmp_path, data))
    message = str(info.value)
    assert "\n" not in message
    assert "mysite.yaml" in message
    return message


def test_good_descriptor_loads(tmp_path):
    site = load_file(write(tmp_path, GOOD))
    assert site.name == "mysite"
    assert site.node.cores == 16
    assert len(site.digest()) == 64


def test_unknown_field_lists_allowed_fields(tmp_path):
    msg = error_for(tmp_path, with_change("node.gpu_count", 4))
    assert "node.gpu_count: unknown field" in msg
    assert "cores_per_socket" in msg and "gpus" in msg


def test_unknown_top_level_field(tmp_path):
    msg = error_for(tmp_path, with_change("queue", "batch"))
    assert "queue: unknown field" in msg and "scheduler" in msg


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("scheduler.kind", "sge", "'slurm', 'lsf', 'pbs' or 'local'"),
        ("launcher.kind", "mpiexec", "'srun', 'jsrun', 'mpirun', 'ibrun', 'aprun', 'torchrun'"),
        ("node.arch", "arm64", "'x86_64', 'ppc64le' or 'aarch64'"),
        ("node.gpus.link", "sxm", "'nvlink' or 'pcie'"),
        ("engine", "tensorflow", "'torch', 'horovod' or 'master-worker'"),
    ],
)
def test_wrong_enum_names_field_and_allowed_values(tmp_path, field, value, allowed):
    msg = error_for(tmp_path, with_change(field, value))
    assert f"{field}:" in msg
    assert allowed in msg
    assert repr(value) in msg


def test_container_runtime_enum(tmp_path):
    msg = error_for(tmp_path, with_change("container", {"runtime": "docker"}))
    assert "container.runtime:" in msg and "'apptainer', 'singularity', 'shifter'" in msg


@pytest.mark.parametrize(
    "field",
    [
        "node.sockets",
        "node.cores_per_socket",
        "node.gpus.count",
        "limits.max_nodes",
        "workers_per_node",
    ],
)
@pytest.mark.parametrize("value", [0, -3])
def test_zero_or_negative_counts(tmp_path, field, value):
    msg = error_for(tmp_path, with_change(field, value))
    assert f"{field}: Input should be greater than 0" in msg
    assert f"got {value}" in msg


@pytest.mark.parametrize("value", ["4h", "04:60:00", "4:00:99", "", "-1:00"])
def test_bad_walltime(tmp_path, value):
    msg = error_for(tmp_path, with_change("limits.max_walltime", value))
    assert "limits.max_walltime:" in msg
    assert "HH:MM" in msg or "below 60" in msg


def test_directive_values_refuse_whitespace_and_newlines(tmp_path):
    msg = error_for(tmp_path, with_change("scheduler.partition", "gpu\nrm -rf /"))
    assert "scheduler.partition:" in msg and "not allowed" in msg
    msg = error_for(tmp_path, with_change("scheduler.directives", ["--mail-type=END\necho hi"]))
    assert "scheduler.directives.0:" in msg


def test_name_must_match_file(tmp_path):
    msg = error_for(tmp_path, {**GOOD, "name": "other"})
    assert "must match the file name 'mysite'" in msg


def test_node_required_without_detect(tmp_path):
    data = dict(GOOD)
    data.pop("node")
    assert "node is required unless detect is true" in error_for(tmp_path, data)


def test_container_needs_image(tmp_path):
    msg = error_for(tmp_path, with_change("container", {"runtime": "apptainer"}))
    assert "needs container.image" in msg


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "mysite.yaml"
    path.write_text("scheduler:\n  kind: slurm\n launcher: [\n")
    with pytest.raises(DescriptorError, match=r"mysite.yaml \(line \d+\): not valid YAML"):
        load_file(path)


def test_walltime_parsing():
    assert walltime_seconds("04:00") == 4 * 3600
    assert walltime_seconds("01:02:03") == 3723
    assert walltime_seconds("2-00:00:00") == 48 * 3600


def test_bundled_sites_hold_reference_facts():
    summitdev = load_site("summitdev")
    assert summitdev.node.arch == "ppc64le"
    assert summitdev.node.gpus.count == 4 and "P100" in summitdev.node.gpus.model
    assert summitdev.scheduler.kind == "lsf"
    assert walltime_seconds(summitdev.limits.max_walltime) == 4 * 3600
    stampede2 = load_site("stampede2")
    assert stampede2.workers_per_node == 4 and stampede2.launcher.kind == "ibrun"
    assert stampede2.env["HOROVOD_FUSION_THRESHOLD"] == "134217728"
    assert load_site("pizdaint").scheduler.constraint == "gpu"
    pnnl = load_site("pnnl")
    assert pnnl.node.gpus.count == 2 and pnnl.node.gpus.memory_gb == 12


def test_user_sites_dir_and_env_path(tmp_path, monkeypatch):
    user = tmp_path / "mine"
    user.mkdir()
    write(user, GOOD, name="cluster9")
    assert "cluster9" in site_files([user])
    monkeypatch.setenv("HPCSCALE_SITES_PATH", str(user))
    assert load_site("cluster9").scheduler.partition == "gpu"
    with pytest.raises(UnknownSiteError, match=r"known sites: .*summitdev"):
        load_site("nope")


# -- descriptors read strictly (issue 15) ----------------------------------------------------
def _pnnl_yaml(tmp_path: Path) -> str:
    res = cli("sites", "show", "pnnl", "--yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_a_duplicate_key_is_refused_with_its_line(tmp_path):
    text = _pnnl_yaml(tmp_path).replace("description:", "description: first\ndescription:", 1)
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    res = cli("sites", "validate", str(path), cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "dup.yaml" in line and "duplicate key 'description'" in line and "line" in line


def test_an_anchor_bomb_is_refused_before_it_is_built(tmp_path):
    rows = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 13)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(rows) + "\n")  # 9^13 strings once expanded
    res = cli("sites", "validate", str(path), cwd=tmp_path, timeout=60)  # never a hang
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "bomb.yaml: uses 108 YAML aliases" in res.stderr and "at most 100" in res.stderr


def test_a_descriptor_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(_pnnl_yaml(tmp_path).replace("PNNL", "PNNL \xe9t\xe9").encode("latin-1"))
    res = cli("sites", "validate", str(path), cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "not UTF-8" in res.stderr and "latin.yaml" in res.stderr


def test_a_few_aliases_are_fine(tmp_path):
    from hpcscale.sites.yamlload import load_yaml

    path = tmp_path / "ok.yaml"
    path.write_text("base: &b {x: 1}\none: *b\ntwo: *b\n")
    assert load_yaml(path) == {"base": {"x": 1}, "one": {"x": 1}, "two": {"x": 1}}


def test_an_unknown_workload_is_one_line_and_exit_2(tmp_path):
    bad = with_change("training", {"model": "4dgan"})
    msg = error_for(tmp_path, bad)
    path = write(tmp_path, bad)
    assert msg == (
        f"{path}: training.model: '4dgan' is unknown; choose one of jishnet, jishnet-small, "
        "scnet, scnet-small, 3dgan, 3dgan-small, cms-jets, cms-jets-small, or give a class as "
        "package.module:Class (`hpcscale workloads` lists every name)"
    )
    res = cli("sites", "validate", str(path))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.stderr


def test_the_old_workload_block_is_refused_with_its_new_name(tmp_path):
    old = with_change("workload", {"model": "jishnet", "batch": 4})
    path = write(tmp_path, old)
    assert error_for(tmp_path, old) == f"{path}: workload: was renamed to training: (same fields)"
    res = cli("sites", "validate", str(path))
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines()[-1].endswith("was renamed to training: (same fields)")


def test_cpu_sites_default_to_3dgan_and_gpu_sites_keep_jishnet():
    for name in ("stampede2", "endeavour"):
        w = load_site(name).training
        assert (w.model, w.batch, w.epochs, w.options) == ("3dgan", 8, 25, ["--inter-threads", "2"])
        assert load_site(name).env["OMP_NUM_THREADS"] == "11"
    for name in ("summitdev", "pizdaint", "pnnl", "titan"):
        assert load_site(name).training.model == "jishnet"
