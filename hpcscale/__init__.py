"""hpcscale: how does my training scale on this machine?

The package mirrors the data flow in ARCHITECTURE.md (its layers and registries): ``sites``
(descriptors) → ``plan`` (one job per size) → ``render`` (job scripts) → submission → ``train``
(every rank) → analysis; ``launch`` is the one pipeline the commands (``cli``) call.
Nothing heavy (torch, horovod, matplotlib, hpccm) is imported here.
"""

__version__ = "0.1.0"
