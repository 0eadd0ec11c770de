"""Dense inputs made on the device (``hpcscale.data.scatter``): each equals the host path's
minibatch bit for bit (JishNet: the Blosc store's decompressed images; cms-jets: the seed's host
densifying), on the CPU, for the same index arrays; the store kept off the device (gathered per
minibatch on the host) gives the same; and a buffer reused across minibatches is cleared."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hpcscale import workloads  # noqa: E402
from hpcscale.data import tensors  # noqa: E402
from hpcscale.data.scatter import Densifier, host_rows, linear_index  # noqa: E402
from hpcscale.data.store import Codec, load_shard  # noqa: E402
from hpcscale.workloads.jishnet.data import DeviceDense, Prefetcher  # noqa: E402
from hpcscale.workloads.scnet.data import DeviceSparse, SparsePrefetcher, load_sparse  # noqa: E402

CPU = torch.device("cpu")
ORDER = [np.array([3, 0, 7]), np.array([1, 2, 5]), np.array([6, 4])]  # the last one short


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    from hpcscale.data.generate import generate

    out = tmp_path_factory.mktemp("dev") / "ev"
    generate(out, 10, resolution=400, seed=5, val_fraction=0.0)
    return out


def test_host_rows_lists_each_samples_cells_in_order():
    offsets = np.array([0, 2, 2, 5, 9])
    rows, counts = host_rows(offsets, np.array([3, 1, 0, 2]))
    assert rows.tolist() == [5, 6, 7, 8, 0, 1, 2, 3, 4] and counts.tolist() == [4, 0, 2, 3]


def test_jishnet_device_dense_equals_the_blosc_images(events):
    store, _ = load_shard(events, "train", 0, 1, Codec())
    sparse, _, _ = load_sparse(events, "train", 0, 1)
    blosc = [b.x.clone() for b in Prefetcher(store, 3, CPU).batches(ORDER)]
    for resident in (True, False):
        dense = DeviceDense(sparse, 3, CPU)
        if not resident:  # the store off the device: each minibatch gathered on the host
            d = dense.densifier
            dense.densifier = Densifier(
                d.offsets, d.linear_np, d.values_np, d.sample_numel, CPU, resident=False
            )
        got = [(b.x.clone(), b.y.clone(), b.size) for b in dense.batches(ORDER)]
        assert [g[2] for g in got] == [3, 3, 2]
        for (x, y, _), ref, idx in zip(got, blosc, ORDER, strict=True):
            assert x.shape == ref.shape and x.dtype == ref.dtype == torch.float32
            assert torch.equal(x, ref)  # bit for bit, after the buffer's earlier minibatches
            assert y.tolist() == store.labels[idx].tolist()
        assert (blosc[0] != 0).sum() > 100  # the images hold deposits


def test_cms_jets_device_batches_equal_the_seeds_host_batches(tmp_path):
    data = tmp_path / "jets"
    workloads.generator("cms-jets")(data, 40, seed=2, workers=1)
    spec = workloads.get("cms-jets-small")
    from hpcscale.train.workload import RankContext

    def batches(input_: str) -> list:
        ctx = RankContext(0, 1, CPU, None, data, 3, 0, None)  # type: ignore[arg-type]
        wl = spec(spec.Config(model="cms-jets-small", input=input_), ctx)
        wl.stage()
        return [(b.x.clone(), b.y.clone()) for b in wl.batches(ORDER)]

    host, device = batches("dense-host"), batches("sparse-device")
    for (xh, yh), (xd, yd) in zip(host, device, strict=True):
        assert torch.equal(xh, xd) and torch.equal(yh, yd)
    assert (host[0][0] != 0).sum() > 100


def test_linear_index_and_a_partial_buffer_are_cleared():
    shape = (2, 3, 4)
    store = tensors.SparseSet(
        shape=shape,
        index=np.array([[0, 0, 0], [1, 2, 3], [0, 1, 1]], dtype=np.int16),
        value=np.array([1.0, 2.0, 3.0], dtype=np.float32),
        offsets=np.array([0, 2, 3]),
        scalars={},
    )
    d = Densifier(store.offsets, linear_index(store.index, shape), store.value, 24, CPU)
    out = torch.zeros((2, *shape))
    prev = d.fill(out, np.array([0, 1]))
    assert torch.equal(out, torch.from_numpy(store.dense([0, 1])))
    prev = d.fill(out, np.array([1]), prev)  # a short minibatch: sample 0's cells are gone
    assert out.sum() == 3.0 and out[0, 0, 1, 1] == 3.0 and out[1].abs().sum() == 0


def _losses(data, out, model: str, options: list[str]) -> list[float]:
    import subprocess
    import sys

    from hpcscale.train.records import read_records

    cmd = [
        sys.executable, "-m", "hpcscale.train", "--model", model, "--data", str(data),
        "--out", str(out), "--no-stop-at-target", "--seed", "0", "--device", "cpu", *options,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [r["global_loss"] for r in read_records(out / "rank-0.jsonl") if r["kind"] == "sync"]


def test_cms_jets_20_steps_on_either_input_give_the_same_losses(tmp_path):
    data = tmp_path / "jets"
    workloads.generator("cms-jets")(data, 360, seed=4, workers=1)  # 324 train: 20 steps of 16
    run = ["--batch", "16", "--epochs", "1"]
    host = _losses(data, tmp_path / "h", "cms-jets-small", [*run, "--input", "dense-host"])
    device = _losses(data, tmp_path / "d", "cms-jets-small", [*run, "--input", "sparse-device"])
    assert len(host) == 20 and device == host  # the same images: the same arithmetic
    assert min(host) < 0.97 * host[0]  # the curve moves: the comparison means something


def test_staging_with_a_pool_of_threads_gives_the_same_store(events):
    one, stats1 = load_shard(events, "train", 0, 1, Codec(), threads=1)
    pool, stats3 = load_shard(events, "train", 1, 2, Codec(threads=1), threads=3)
    half, _ = load_shard(events, "train", 1, 2, Codec(), threads=1)
    # the same images (Blosc's bytes may depend on its thread count)
    assert all(np.array_equal(pool.image(i), half.image(i)) for i in range(len(half)))
    assert pool.labels.tolist() == half.labels.tolist()
    assert len(one) == 10 and len(pool) == 5 and stats3.total_events == stats1.total_events


def test_scnet_device_minibatches_equal_the_host_assembled_ones(events):
    sparse, _, _ = load_sparse(events, "train", 0, 1)
    host = list(SparsePrefetcher(sparse, CPU).batches(ORDER))
    device = list(DeviceSparse(sparse, CPU).batches(ORDER))
    for h, d in zip(host, device, strict=True):
        assert torch.equal(h.coords, d.coords) and h.coords.dtype == d.coords.dtype
        assert torch.equal(h.features, d.features) and torch.equal(h.y, d.y)
        assert h.size == d.size


def test_scnet_20_steps_on_either_input_give_the_same_losses(tmp_path):
    from hpcscale.data.generate import generate

    data = tmp_path / "ev"
    generate(data, 160, resolution=400, seed=3, val_fraction=0.0)  # 20 steps of 8
    run = ["--batch", "8", "--epochs", "1", "--loss", "standard", "--lr", "3e-3"]
    host = _losses(data, tmp_path / "h", "scnet-small", [*run, "--input", "host"])
    device = _losses(data, tmp_path / "d", "scnet-small", [*run, "--input", "device"])
    assert len(host) == 20 and device == host
    assert min(host) < 0.97 * host[0]


def test_scnet_geometry_made_ahead_equals_the_steps_own(events):
    """The prefetch thread's geometry (``--geometry-ahead``) is what the forward pass makes
    itself, and the model gives the same probabilities with it."""
    from hpcscale.workloads.scnet.model import SCNet

    torch.manual_seed(0)
    model = SCNet.from_preset("scnet-small", resolution=400)
    sparse, _, _ = load_sparse(events, "train", 0, 1)
    ahead = list(SparsePrefetcher(sparse, CPU, prepare=model.geometry).batches(ORDER))
    for batch in ahead:
        own = model.geometry(batch.coords, batch.size)
        for a, b in zip(batch.geometry.tensors(), own.tensors(), strict=True):
            assert torch.equal(a, b)
        assert batch.timings["geometry_s"] >= 0 and batch.geometry.batch_size == batch.size
        with_ahead = model(batch.coords, batch.features, batch.size, batch.geometry)
        assert torch.equal(with_ahead, model(batch.coords, batch.features, batch.size))
    assert len(ahead) == 3 and all(len(g.kmaps) == 4 for g in (b.geometry for b in ahead))
    # several threads making minibatches in turn: the same minibatches, in order
    order = [np.array([i % 10, (3 * i + 1) % 10]) for i in range(7)]
    one = list(SparsePrefetcher(sparse, CPU, prepare=model.geometry).batches(order))
    three = list(SparsePrefetcher(sparse, CPU, 1, model.geometry, threads=3).batches(order))
    for a, b in zip(one, three, strict=True):
        assert torch.equal(a.coords, b.coords) and torch.equal(a.y, b.y)
        pairs = zip(a.geometry.tensors(), b.geometry.tensors(), strict=True)
        assert all(torch.equal(x, y) for x, y in pairs)


def test_scnet_20_steps_with_the_geometry_ahead_give_the_same_losses(tmp_path):
    from hpcscale.data.generate import generate

    data = tmp_path / "ev"
    generate(data, 160, resolution=400, seed=3, val_fraction=0.0)  # 20 steps of 8
    run = ["--batch", "8", "--epochs", "1", "--loss", "standard", "--lr", "3e-3"]
    inline = _losses(data, tmp_path / "i", "scnet-small", [*run, "--no-geometry-ahead"])
    ahead = _losses(data, tmp_path / "a", "scnet-small", [*run, "--geometry-ahead"])
    assert len(inline) == 20 and ahead == inline
    assert min(inline) < 0.97 * inline[0]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ("--input device --geometry-ahead", "--input host"),
        ("--input device --cuda-graph", "--geometry-ahead"),
        ("--input device --prefetch-threads 2", "--prefetch-threads"),
        ("--cuda-graph --bf16", "--bf16"),
        ("--cuda-graph", "needs a GPU"),  # the CPU
    ],
)
def test_scnet_fast_paths_that_cannot_be_honoured_are_refused(events, tmp_path, options, named):
    import subprocess
    import sys

    cmd = [
        sys.executable, "-m", "hpcscale.train", "--model", "scnet-small", "--data", str(events),
        "--out", str(tmp_path / "o"), "--device", "cpu", *options.split(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert named in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
