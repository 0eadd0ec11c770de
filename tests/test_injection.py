"""No shell injection: hostile descriptor values reach argv intact and run nothing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import yaml

from hpcscale.plan import Request
from hpcscale.render.script import JobSpec, train_command
from hpcscale.schedulers.jobs import plan_job, render_script
from hpcscale.sites import load_file

HOSTILE = [
    "$(touch CANARY)",
    "`touch CANARY`",
    'it\'s "quoted"',
    "two words",
    "line one\nline two; touch CANARY",
    "$HOME; touch CANARY &",
]

FAKE = """#!{python}
import json, os, sys
with open(os.environ["ARGV_LOG"], "a") as fh:
    fh.write(json.dumps({{"argv": sys.argv[1:], "env": {{k: os.environ.get(k) for k in
                         ("HOSTILE_A", "HOSTILE_B")}}}}) + "\\n")
"""


def _fake_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("srun", "module"):
        exe = bin_dir / name
        exe.write_text(FAKE.format(python=sys.executable))
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_hostile_values_arrive_intact_and_run_nothing(tmp_path):
    descriptor = {
        "scheduler": {"kind": "slurm", "partition": "debug"},
        "launcher": {"kind": "srun", "options": HOSTILE[:3]},
        "container": {
            "runtime": "apptainer",
            "enabled": True,
            "image": HOSTILE[3] + ".sif",
            "binds": HOSTILE[4:],
        },
        "node": {"cpu": "x", "arch": "x86_64", "sockets": 1, "cores_per_socket": 2, "memory_gb": 4},
        "limits": {"max_nodes": 1, "max_walltime": "01:00:00"},
        "modules": [HOSTILE[0]],
        "env": {"HOSTILE_A": HOSTILE[1], "HOSTILE_B": HOSTILE[4]},
        "data_dir": HOSTILE[5],
    }
    path = tmp_path / "evil.yaml"
    path.write_text(yaml.safe_dump(descriptor))
    site = load_file(path)
    plan = plan_job(site, Request(ranks=1))
    command = train_command(site, plan, data=site.data_dir, out=HOSTILE[2])
    script = tmp_path / "job.sh"
    script.write_text(render_script(site, plan, JobSpec(name="evil", command=command)))

    work = tmp_path / "work"
    work.mkdir()
    log = tmp_path / "argv.jsonl"
    env = {
        **os.environ,
        "PATH": f"{_fake_bin(tmp_path)}:{os.environ['PATH']}",
        "ARGV_LOG": str(log),
    }
    subprocess.run(["bash", str(script)], cwd=work, env=env, check=True, timeout=60)

    assert not list(work.iterdir()), "the job script created files (a canary ran)"
    assert not list(tmp_path.glob("**/CANARY"))
    module_call, srun_call = (json.loads(line) for line in log.read_text().splitlines())
    assert module_call["argv"] == ["load", HOSTILE[0]]
    srun_argv = srun_call["argv"]
    apptainer = srun_argv.index("apptainer")
    assert srun_argv[:apptainer][-3:] == HOSTILE[:3]
    assert srun_argv[apptainer:] == [
        "apptainer",
        "exec",
        "-B",
        HOSTILE[4],
        "-B",
        HOSTILE[5],
        HOSTILE[3] + ".sif",
        *command,
    ]
    assert srun_call["env"] == {"HOSTILE_A": HOSTILE[1], "HOSTILE_B": HOSTILE[4]}


def test_braced_variables_expand_but_nothing_else(tmp_path):
    from hpcscale.render.script import shell_quote

    word = shell_quote("${SCRATCH}/data $(touch CANARY) $HOME")
    out = subprocess.run(
        ["bash", "-c", f"printf %s {word}"],
        env={"SCRATCH": "/s", "HOME": "/h"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert out == "/s/data $(touch CANARY) $HOME"
    assert not (tmp_path / "CANARY").exists()
