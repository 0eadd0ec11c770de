"""The one exceptions module.

``UserError`` and its subclasses are mistakes a user can fix (a bad descriptor, a request the site
cannot run, a missing file). The CLI prints them as one line and exits with code 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input; printed as one line, exit code 2."""

    exit_code = 2


class DescriptorError(UserError):
    """A site descriptor that does not parse or validate."""


class UnknownSiteError(UserError):
    """A site name that no descriptor on the search path defines."""


class UnknownNameError(UserError):
    """A name that no registry entry of its axis (scheduler, launcher, ...) has."""


class PlanError(UserError):
    """A request the site cannot run (too many nodes, walltime over the limit, ...)."""


class RenderError(UserError):
    """A value that cannot be written safely into a job script."""


class DataError(UserError):
    """A missing, truncated or malformed data file."""


# Not user errors: how a training rank's run ends early. They live here so that every exception
# class of hpcscale is in one module.


class PeerFailure(RuntimeError):
    """A collective failed or timed out: another rank died or hangs."""


class Terminated(Exception):
    """SIGTERM/SIGINT: the scheduler or the user stopped the job."""


class Requeue(Exception):
    """The job checkpointed at a step boundary (walltime) and should be requeued."""
