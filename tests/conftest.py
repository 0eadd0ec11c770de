from __future__ import annotations

from pathlib import Path

import pytest

from hpcscale.sites import detect
from hpcscale.sites.models import Node

TESTS = Path(__file__).resolve().parent
GOLDEN = TESTS / "golden"

# A fixed machine for the `local` site, so golden files do not depend on where tests run.
FIXED_LOCAL_NODE = Node(
    cpu="Test CPU",
    arch="x86_64",
    sockets=1,
    cores_per_socket=8,
    threads_per_core=1,
    memory_gb=32,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="rewrite golden files (job scripts, container recipes) instead of comparing",
    )


@pytest.fixture
def regen(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--regen-golden"))


@pytest.fixture
def fixed_local(monkeypatch: pytest.MonkeyPatch) -> Node:
    monkeypatch.setattr(detect, "detect_node", lambda: FIXED_LOCAL_NODE)
    return FIXED_LOCAL_NODE


def check_golden(path: Path, text: str, regen: bool) -> None:
    """Compare ``text`` with the golden file, or rewrite it under --regen-golden."""
    if regen:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"{path} missing; run pytest --regen-golden and review the diff"
    assert text == path.read_text(), f"{path} differs; review, then pytest --regen-golden"
