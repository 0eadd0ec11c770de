"""The HTML report in a real headless browser (Debian's chromium): every figure decodes, every
table lays out, every link resolves. .ci/run installs chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import cli

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run does)"
)

# Runs after every image has loaded (the load event) and writes what the page looks like.
PROBE = """<script>
addEventListener('load', () => {
  const imgs = [...document.images].map(i => ({src: i.getAttribute('src'),
    ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth,
    shown: i.getBoundingClientRect().width}));
  const tables = [...document.querySelectorAll('table')].map(t => ({rows: t.rows.length,
    cols: t.rows[0] ? t.rows[0].cells.length : 0, height: t.getBoundingClientRect().height}));
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  const pre = document.createElement('pre');
  pre.id = 'hpcscale-probe';
  pre.textContent = JSON.stringify({imgs, tables, links});
  document.body.appendChild(pre);
});
</script>
"""


def render_in_chromium(page: Path, profile: Path) -> dict:
    """Load ``page`` (with PROBE appended, beside it) in headless chromium; the probe's result."""
    probe = page.with_name("_probe.html")
    probe.write_text(page.read_text() + PROBE)
    res = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    probe.unlink()
    found = re.search(r'<pre id="hpcscale-probe">(.*?)</pre>', res.stdout, re.S)
    assert found, f"chromium printed no probe (exit {res.returncode}): {res.stderr[-1500:]}"
    return json.loads(html.unescape(found.group(1)))


def test_html_report_renders_in_chromium(tmp_path):
    studies = [ROOT / "results" / "h200x4" / name for name in ("ttl-1.38", "ttl-1.45")]
    out = tmp_path / "report"
    res = cli("report", *map(str, studies), "--format", "html", "--out", str(out))
    assert res.returncode == 0, res.stderr
    page = out / "report.html"
    source = page.read_text()
    seen = render_in_chromium(page, tmp_path / "profile")

    assert len(seen["imgs"]) == source.count("<img ") >= 5  # 3 scaling plots + per-study figures
    for img in seen["imgs"]:
        assert img["ok"] and img["w"] == 960 and img["shown"] > 0, img
    assert len(seen["tables"]) == source.count("<table") >= 4
    for table in seen["tables"]:
        assert table["rows"] >= 2 and table["cols"] >= 2 and table["height"] > 0, table
    assert seen["links"], "the report links its results.json"
    for link in seen["links"]:
        url = urlparse(link)
        assert url.scheme == "file", f"the report links outside its folder: {link}"
        assert Path(unquote(url.path)).is_file(), f"broken link {link}"
    json.loads((out / "results.json").read_text())


def test_probe_sees_a_broken_image(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<!doctype html><table><tr><td>a</td></tr></table><img src='missing.png'>")
    seen = render_in_chromium(page, tmp_path / "profile")
    assert seen["imgs"] == [
        {"src": "missing.png", "ok": False, "w": 0, "shown": seen["imgs"][0]["shown"]}
    ]
