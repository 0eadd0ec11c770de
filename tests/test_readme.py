"""The README's commands, run as written from an empty folder (tests/readme_blocks.py says how).

Blocks run in README order in one scratch folder, so later blocks see what earlier ones made
(the tour's events, runs/first). A README change that breaks a command fails here.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from readme_blocks import Block, parse, readme_blocks

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = readme_blocks(README)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("readme")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, scratch: Path) -> dict[str, str]:
    """`python`, `hpcscale` and `horovodrun` are this interpreter's, as after
    `. .venv/bin/activate` (CI has no venv and may have no `python` on PATH: link one)."""
    shim = tmp_path_factory.mktemp("bin")
    # a script, not a link: a link to a venv's python outside the venv's bin/ starts the base
    # interpreter, without the venv's packages (horovodrun's ranks would miss hpcscale)
    (shim / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    (shim / "python").chmod(0o755)
    path = os.pathsep.join([str(shim), str(Path(sys.executable).parent), os.environ["PATH"]])
    # COLUMNS: rich tables keep an expected line on one line.
    return {**os.environ, "PATH": path, "HPCSCALE_CACHE": str(scratch / ".cache"), "COLUMNS": "200"}


def test_only_the_set_up_lines_are_skipped():
    skipped = [b for b in BLOCKS if b.skip]
    assert len(skipped) == 2, [(b.lineno, b.skip) for b in skipped]
    assert "pip install -e '.[all]'" in skipped[0].commands[0].line
    assert skipped[1].commands[0].line == "python -m pytest -q"


def test_every_swap_names_text_of_its_block():
    for block in BLOCKS:
        for old, _ in block.swaps:
            assert any(old in c.line for c in block.commands), (block.lineno, old)


def test_parser_reads_directives_and_expected_lines():
    text = (
        "<!-- docs-test: --events 400 => --events 6 -->\n```console\n"
        "$ hpcscale data generate --events 400 --out e\n$ false\nerror: x\n```\n"
        "<!-- docs-test: needs horovod -->\n\nprose\n```bash\nls\n```\n"
    )
    first, second = parse(text)
    assert [c.line for c in first.runnable()] == [
        "hpcscale data generate --events 6 --out e",
        "false",
    ]
    assert first.commands[1].expect_error and not first.commands[0].expect_error
    assert second.needs is None  # prose between a directive and a block cancels it


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if not b.skip], ids=lambda b: f"README-line-{b.lineno}"
)
def test_readme_block(block: Block, scratch: Path, env: dict[str, str]) -> None:
    if block.needs == "slurm":
        if os.environ.get("HPCSCALE_REAL_SLURM") != "1":
            pytest.skip("needs the real Slurm and Charliecloud that .ci/run sets up")
    elif block.needs and importlib.util.find_spec(block.needs) is None:
        pytest.skip(
            f"{block.needs} is not installed (README, 'Horovod': bash scripts/build-horovod.sh)"
        )
    for command in block.runnable():
        res = subprocess.run(
            ["bash", "-c", command.line],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        said = " ".join((res.stdout + res.stderr).split())
        where = (
            f"README line {block.lineno}: `{command.line}` (exit {res.returncode})\n{said[-2000:]}"
        )
        assert res.returncode == (2 if command.expect_error else 0), where
        for line in command.expect:
            assert " ".join(line.split()) in said, f"{where}\nexpected: {line}"
        assert "Traceback" not in res.stderr, where
