"""Hyper-parameter optimisation over a study's jobs (``hpcscale optimize``).

``space``: a search space's options mapped to and from the unit cube; ``evolution``: the seed's
evolutionary step (hand-written: fittest kept, children by random interpolation plus mutation);
``gp``: Bayesian optimisation with a Gaussian-process prior (Optuna's ``GPSampler``); ``driver``:
the loop that submits trials as jobs of the study, waits, and resumes from the study folder.
"""
