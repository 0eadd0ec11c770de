"""Job plans: arithmetic and refusals with the limit in the message."""

from __future__ import annotations

import pytest

from hpcscale.errors import PlanError
from hpcscale.plan import Request
from hpcscale.schedulers.jobs import plan_job
from hpcscale.sites import load_site
from hpcscale.sites.detect import resolve


def plan(site: str, **kw):
    return plan_job(resolve(load_site(site)), Request(**kw))


def test_summitdev_8_gpus_is_2_nodes_8_ranks():
    p = plan("summitdev", gpus=8)
    assert (p.nodes, p.ranks, p.ranks_per_node, p.gpus_per_rank) == (2, 8, 4, 1)
    assert p.cpus_per_rank == 5  # 20 cores / 4 ranks
    assert p.walltime_s <= 4 * 3600


def test_stampede2_nodes_give_four_ranks_each_with_12_threads():
    p = plan("stampede2", nodes=2)
    assert (p.nodes, p.ranks, p.ranks_per_node, p.cpus_per_rank, p.gpus) == (2, 8, 4, 12, 0)


def test_partial_single_node_is_allowed():
    p = plan("summitdev", gpus=2)
    assert (p.nodes, p.ranks, p.ranks_per_node) == (1, 2, 2)


def test_shared_node_site_allows_uneven_counts():
    p = plan("pnnl", gpus=3)
    assert (p.nodes, p.ranks) == (2, 3)


@pytest.mark.parametrize(
    ("site", "kw", "fragment"),
    [
        ("summitdev", {"gpus": 8, "walltime": "05:00"}, "over site summitdev's limit of 04:00:00"),
        ("summitdev", {"gpus": 400}, "at most 50 nodes; this request needs 100"),
        ("summitdev", {"gpus": 6}, "allocates whole nodes of 4 GPUs"),
        ("stampede2", {"gpus": 4}, "has no GPUs"),
        ("summitdev", {"gpus": 4, "walltime": "4h"}, "HH:MM"),
        ("summitdev", {"gpus": 0}, "--gpus must be a positive integer"),
        ("local", {"ranks": 2, "walltime": "25:00"}, "limit of 24:00:00"),
    ],
)
def test_refusals_say_the_limit(site, kw, fragment):
    with pytest.raises(PlanError, match=fragment.replace("(", r"\(")):
        plan(site, **kw)


def test_exactly_one_size():
    with pytest.raises(PlanError, match="exactly one of"):
        Request(gpus=4, nodes=1)
    with pytest.raises(PlanError, match="exactly one of"):
        Request()


def test_local_ranks_share_one_node(fixed_local):
    p = plan("local", ranks=4)
    assert (p.nodes, p.ranks, p.ranks_per_node, p.cpus_per_rank) == (1, 4, 4, 2)


def test_shared_site_uneven_count_plans_a_short_last_node():
    p = plan("pnnl", gpus=3)
    assert (p.uneven, p.last_node_ranks, p.gpus, p.gpus_per_node) == (True, 1, 3, 2)
    assert p.node_groups() == [(1, 2), (1, 1)] and p.node_gpus(1) == 1


@pytest.mark.parametrize(
    ("workers", "gpus", "expected"),
    [(4, 2, (0, 2)), (2, 4, (2, 1)), (4, 4, (1, 1)), (8, 2, (0, 4))],
)
def test_gpu_sharing(workers, gpus, expected):
    from hpcscale.plan import gpu_sharing

    site = resolve(load_site("pnnl"))
    assert gpu_sharing(site, workers, gpus) == expected


@pytest.mark.parametrize(("workers", "gpus"), [(3, 2), (3, 4), (6, 4)])
def test_gpu_sharing_refuses_uneven_shares(workers, gpus):
    from hpcscale.plan import gpu_sharing

    with pytest.raises(PlanError, match="evenly"):
        gpu_sharing(resolve(load_site("pnnl")), workers, gpus)


def test_walltime_rounds_up_per_scheduler():
    assert plan("summitdev", gpus=4, walltime="00:03:30").walltime_s == 240  # LSF: minutes
    assert plan("pnnl", gpus=2, walltime="01:30:45").walltime_s == 5460  # Slurm: minutes
    assert plan("endeavour", nodes=1, walltime="01:30:45").walltime_s == 5445  # PBS: seconds
