"""--repeats: every size R times, labelled; reports average the repeats, say how noisy each
figure was, and say at each size where efficiency went."""

from __future__ import annotations

import json

from conftest import cli

from hpcscale.analysis.attribution import efficiency_lines, repeat_rows, size_means


def test_repeats_label_every_size_r_times(tmp_path):
    res = cli("submit", "--site", "local", "--ranks", "1,2", "--repeats", "2", "--dry-run",
              "--study", str(tmp_path / "s"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    jobs = [(j["label"], j["ranks"], j["repeat"]) for j in manifest["jobs"]]
    assert jobs == [("1r-rep1", 1, 1), ("1r-rep2", 1, 2), ("2r-rep1", 2, 1), ("2r-rep2", 2, 2)]
    assert "repeats: 2" in (tmp_path / "s" / "study.yaml").read_text()
    bad = cli("submit", "--site", "local", "--ranks", "1", "--repeats", "0", "--dry-run",
              "--study", str(tmp_path / "t"))  # fmt: skip
    assert bad.returncode == 2


def _job(n, ttl, dlt, steps, allreduce=0.0):
    split = {"allreduce_s": allreduce, "data_wait_s": 0.0}
    return {"n": n, "status": "completed", "ttl_s": ttl, "dlt_s": dlt, "ttl_steps": steps,
            "steady_step_s": 1.0, "epoch_rate_per_min": 60.0 / ttl, "stop_reason": "target",
            "step_time_split_s": split}  # fmt: skip


def test_repeats_are_averaged_and_their_spread_named():
    jobs = [_job(1, 100, 10, 90), _job(1, 110, 10, 100), _job(2, 80, 10, 140)]
    means = size_means(jobs)
    assert [(m["n"], m["repeats"], m["ttl_s"]) for m in means] == [(1, 2, 105), (2, 1, 80)]
    rows = repeat_rows({"jobs": jobs})
    assert rows[0][:2] == ["1", "2"] and "spread 7%" in rows[0][2]  # sd 7.07 over mean 105
    assert repeat_rows({"jobs": [_job(1, 100, 10, 90), _job(2, 80, 10, 140)]}) == []


def test_where_efficiency_went_adds_up_to_the_lost_time():
    # N=1: TTL 100 (DLT 10, 90 steps of 1 s); N=2: TTL 90, DLT 10, 80 steps of 1 s of which 0.1 s
    # allreduce. Ideal 50 s. Lost 40 s: start-up 10 − 5 = 5, allreduce 80·0.1 = 8,
    # statistical efficiency (80 − 45)·1 = 35, other 40 − 48 = −8.
    line = efficiency_lines({"jobs": [_job(1, 100, 10, 90), _job(2, 90, 10, 80, 0.1)]})[0]
    assert line.startswith("N=2: TTL efficiency 56%")
    assert "start-up +6%" in line and "allreduce +9%" in line
    assert "statistical efficiency +39%" in line and "other -9%" in line
    assert "steps 80 vs 45 at constant samples" in line
