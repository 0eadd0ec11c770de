"""Where a rank reads its data from (``--data-placement``): a study axis of DLT.

``shared`` (the default): the data set folder where ``--data`` says, on a cluster the parallel
file system every node reads. ``node-local``: the folder is first copied to the node's own
storage (``$HPCSCALE_NODE_LOCAL``, else the job's ``$TMPDIR``, else /tmp), once per node — the
node's first rank copies, the node's other ranks wait for the copy — and the ranks read that
copy. ``image``: the ranks read the data set that ``hpcscale container build --data DIR`` baked
into the site's image (``hpcscale.containers.imagedata``; nothing to copy at run time, the image
is the copy). The placement is its own part of DLT ("placement", the "placed" phase record), so
a study that sweeps the option (``--sweep data_placement=shared,node-local,image``) shows which
placement pays on a site. The node's last rank to finish removes a node-local copy; a whole copy
that a killed segment of the same job left on the node is reused.

No torch here: plain file operations, so the rules are testable without a job.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from hpcscale.containers.imagedata import in_image
from hpcscale.errors import UserError


def place(
    data: Path, placement: str, job: str, rank: int, first_on_node: bool, env: Mapping[str, str]
) -> tuple[Path, NodeLocalCopy | None]:
    """Where this rank reads the data set, and the node-local copy it must release when done
    (None for the other placements)."""
    if placement == "node-local":
        copy = NodeLocalCopy(data, node_local_root(env), job, rank)
        return copy.place(first_on_node=first_on_node), copy
    if placement == "image":  # baked into the image: nothing to copy
        return in_image(), None
    return data, None


def node_local_root(env: Mapping[str, str]) -> Path:
    """The node's own storage: ``$HPCSCALE_NODE_LOCAL``, else ``$TMPDIR``, else /tmp."""
    return Path(env.get("HPCSCALE_NODE_LOCAL") or env.get("TMPDIR") or "/tmp")


def copy_name(data: Path, job: str) -> str:
    """The copy's folder name: the job and the data set's path (two data sets, two copies)."""
    digest = hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:12]
    return f"hpcscale-data-{job}-{digest}"


class NodeLocalCopy:
    """This rank's use of the node's copy of ``data`` under ``root``."""

    def __init__(self, data: Path, root: Path, job: str, rank: int) -> None:
        self.data, self.rank = data, rank
        self.path = root / copy_name(data, job)
        self.done = self.path.with_name(self.path.name + ".done")  # the copy is whole
        self.users = self.path.with_name(self.path.name + ".users")  # the ranks reading it
        self.failed = self.path.with_name(self.path.name + ".failed")  # why the copy failed

    def place(self, first_on_node: bool, timeout_s: float = 3600.0) -> Path:
        """The copy's path: made by the node's first rank, waited for by the others."""
        if first_on_node and not self.done.exists():
            with contextlib.suppress(OSError):  # an earlier attempt's error (or no folder)
                self.failed.unlink()
            self._copy()
        deadline = time.monotonic() + timeout_s
        while not self.done.exists():
            if self.failed.exists():  # the first rank's error, not an hour's wait
                raise UserError(self.failed.read_text())
            if time.monotonic() > deadline:
                raise UserError(
                    f"--data-placement node-local: the copy of {self.data} to {self.path} by "
                    f"this node's first rank did not appear within {timeout_s:.0f} s"
                )
            time.sleep(0.2)
        self.users.mkdir(exist_ok=True)
        (self.users / str(self.rank)).touch()
        return self.path

    def _copy(self) -> None:
        part = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            shutil.copytree(self.data, part)
            if self.path.is_dir():  # a half copy a killed job left
                shutil.rmtree(self.path)
            os.replace(part, self.path)
            self.done.touch()
        except OSError as exc:
            shutil.rmtree(part, ignore_errors=True)
            why = (
                f"--data-placement node-local: cannot copy {self.data} to {self.path} "
                f"({exc.strerror or exc}); set HPCSCALE_NODE_LOCAL to a folder with room"
            )
            with contextlib.suppress(OSError):
                self.failed.write_text(why)
            raise UserError(why) from exc

    def release(self) -> None:
        """This rank is done reading; the node's last one removes the copy."""
        try:
            (self.users / str(self.rank)).unlink(missing_ok=True)
            self.users.rmdir()  # fails while another rank of the node still reads
        except OSError:
            return
        self.done.unlink(missing_ok=True)
        shutil.rmtree(self.path, ignore_errors=True)
