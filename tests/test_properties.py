"""Property-based tests (Hypothesis) of the input contract: any descriptor, size list or events
manifest is either accepted or refused with exit code 2 and one line that starts with
``error:`` — never a traceback, never another exit code, and within a deadline (no hang).

Run with ``--hypothesis-show-statistics`` to see the example counts and the slowest cases.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import tiny_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpcscale.cli import main
from hpcscale.errors import UserError
from hpcscale.resources import resource_dir


def contract(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=5000,  # ms per example: a case that takes longer is a failure (no hangs)
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=True,  # the same examples on every CI run: a failure reproduces
    )


def run_cli(*args: str) -> tuple[int, str, str]:
    """``hpcscale ARGS`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code or 0
    return int(code), out.getvalue(), err.getvalue()


def assert_contract(code: int, stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert code in (0, 2), (code, stderr)
    if code == 2:
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr
        assert len(lines[0]) <= 700, lines[0]


# Values that a hand-edited file may hold where another was expected.
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(alphabet="\n\t\x1b'\"$`;|&() ", max_size=10),
    st.text(min_size=300, max_size=2000, alphabet="ab"),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)


def paths_of(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested mapping (lists by index)."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths_of(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += paths_of(value, (*prefix, i))
    return found


@st.composite
def mutated(draw: st.DrawFn, base: dict) -> dict:
    """``base`` with one to three fields replaced by odd values, deleted, or joined by a field
    of an unknown name."""
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = paths_of(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(ODD_VALUES)
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(ODD_VALUES)
    return data


PNNL = yaml.safe_load((resource_dir("sites") / "pnnl.yaml").read_text())


@contract(300)
@given(descriptor=mutated(PNNL))
def test_any_descriptor_is_valid_or_one_line(tmp_path, descriptor):
    path = tmp_path / "pnnl.yaml"
    path.write_text(yaml.safe_dump(descriptor, allow_unicode=True))
    code, _, err = run_cli("sites", "validate", str(path))
    assert_contract(code, err)


@contract(200)
@given(raw=st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_bytes_as_a_descriptor_are_refused_in_one_line(tmp_path, raw):
    path = tmp_path / "odd.yaml"
    path.write_bytes(raw)
    code, _, err = run_cli("sites", "validate", str(path))
    assert_contract(code, err)


SIZE_TEXT = st.one_of(
    st.text(alphabet="0123456789,", max_size=12),
    st.text(alphabet="0123456789, -+.xe\n", max_size=16),
    st.lists(st.integers(min_value=-3, max_value=10**10), min_size=1, max_size=5).map(
        lambda xs: ",".join(map(str, xs))
    ),
    st.text(max_size=20),
)


@contract(300)
@given(text=SIZE_TEXT, flag=st.sampled_from(["--gpus", "--nodes", "--ranks"]))
def test_any_size_list_is_planned_or_one_line(tmp_path, text, flag):
    study = tmp_path / "study"
    shutil.rmtree(study, ignore_errors=True)
    code, _, err = run_cli(
        "submit", "--site", "pnnl", flag, text, "--dry-run", "--study", str(study),
        "--data", "/nowhere",
    )  # fmt: skip
    assert_contract(code, err)
    if code == 0:
        jobs = json.loads((study / "manifest.json").read_text())["jobs"]
        assert len(jobs) == len(text.split(",")) and all(j["state"] == "dry-run" for j in jobs)
    else:
        assert not study.exists(), "a refused size list left a study folder behind"


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_events(tmp_path_factory.mktemp("events") / "events", 40, seed=5)


@contract(200)
@given(data=st.data())
def test_any_events_manifest_is_accepted_or_refused_before_training(tmp_path, events, data):
    from hpcscale.preflight import check_data
    from hpcscale.train.config import parse

    base = json.loads((events / "manifest.json").read_text())
    manifest = data.draw(mutated(base) | st.just([base]) | ODD_VALUES)
    folder = tmp_path / "events"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(events, folder)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    train_args = ["--data", str(folder), "--out", str(tmp_path / "out"), "--model", "jishnet-small"]
    try:
        # what submit and run ask before any rank starts, with the options as the ranks parse them
        check_data(folder, 1, *parse(train_args))
    except UserError as exc:
        assert str(exc).startswith(str(folder)), exc  # the message names the data set's file
