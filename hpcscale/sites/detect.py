"""Describe this machine, for descriptors with ``detect: true`` (the ``local`` site).

Reads /proc and ``nvidia-smi``; never imports torch, so planning and rendering stay fast.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

from hpcscale.sites.models import Gpus, Node, Site
from hpcscale.sites.refusals import refuse

_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "ppc64le": "ppc64le", "aarch64": "aarch64"}


def detect_node() -> Node:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return Node(
        cpu=_cpu_model(),
        arch=_ARCH.get(platform.machine().lower(), "x86_64"),
        sockets=1,
        cores_per_socket=cores or 1,
        threads_per_core=1,
        memory_gb=round(_memory_bytes() / 2**30, 1) or 1.0,
        gpus=detect_gpus(),
    )


def detect_gpus() -> Gpus | None:
    """NVIDIA GPUs visible to this process (honours CUDA_VISIBLE_DEVICES), or None."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [line.split(",") for line in out.strip().splitlines() if line.strip()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    count = len([v for v in visible.split(",") if v]) if visible is not None else len(rows)
    if not rows or count == 0:
        return None
    name, mem_mib = rows[0][0].strip(), float(rows[0][1])
    link = "nvlink" if "SXM" in name or "H100" in name or "H200" in name else "pcie"
    return Gpus(
        model=name, count=min(count, len(rows)), memory_gb=round(mem_mib / 1024, 1), link=link
    )


def resolve(site: Site) -> Site:
    """Return ``site`` with its node filled in from this machine when it asks for detection."""
    if not site.detect:
        return site
    detected = site.model_copy(update={"node": detect_node(), "detect": False})
    return refuse(detected, f"site {site.name} (node detected on this machine)")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "cpu\t", "cpu ")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
