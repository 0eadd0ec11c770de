"""``${NAME}`` references: the one expansion a descriptor's values may carry into a job.

A leaf module (imports nothing of hpcscale's): ``render.script.shell_quote`` leaves a reference to
the job's shell; ``expand_refs`` expands it on the rank, for arguments that reach the rank past the
shell (submitit's pickle).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_refs(argv: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """``${NAME}`` in the rank's arguments (e.g. a site's ``data_dir: ${SCRATCH}/lartpc``),
    expanded from the rank's environment as a job script's shell expands them: submitit's
    pickle carries the arguments past the shell. A name that is not set stays as written, so
    the error that follows (no such data folder ``${SCRATCH}/lartpc``) shows which one."""
    return [ENV_REF.sub(lambda m: environ.get(m.group(1), m.group(0)), arg) for arg in argv]
