"""The shared data-parallel training core that runs on every rank (``python -m hpcscale.train``).

torch is imported only inside this package's modules, never by ``hpcscale`` itself.
"""
