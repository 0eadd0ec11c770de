"""Scheduler backends, one module per scheduler (``registry.SCHEDULERS``); what the rest of
hpcscale calls (job script, executor, state, cancel) is in ``jobs``. This file imports nothing,
so the registry's table can be read without loading any backend."""
