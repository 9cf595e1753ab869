"""The isolation layer the program verifier runs model-written code in (kept apart from judging it).

- :mod:`.bubblewrap`: the namespaces and the read-only view (the boundary);
- :mod:`.seccomp`: a filter that stops the program from starting processes;
- :mod:`.process`: time and output bounds, and killing everything the program started;
- :mod:`.cgroup`: one memory limit and one thread-and-process count per sandbox, where the machine allows;
- :mod:`.cleanup`: removing a folder a program wrote into (runs without the sandbox) without following links;
- ``bootstrap.py``: the first code the sandboxed interpreter runs (limits and an explanatory audit hook).

See ``docs/sandbox.md`` for what is guaranteed and what is not.
"""

from __future__ import annotations

import functools
from importlib import resources

from thinkloop.verifiers.sandbox.bubblewrap import SCRATCH, SandboxCommand, bubblewrap_command, probe, python_roots
from thinkloop.verifiers.sandbox.cgroup import (
    JOIN_FAILED,
    Cgroup,
    cgroup_unavailable_reason,
    create_cgroup,
    disable_cgroups,
)
from thinkloop.verifiers.sandbox.cleanup import remove_tree
from thinkloop.verifiers.sandbox.process import Finished, ProcessTree, run_bounded
from thinkloop.verifiers.sandbox.seccomp import process_filter

__all__ = [
    "JOIN_FAILED",
    "SCRATCH",
    "Cgroup",
    "Finished",
    "ProcessTree",
    "SandboxCommand",
    "bootstrap_source",
    "bubblewrap_command",
    "cgroup_unavailable_reason",
    "create_cgroup",
    "disable_cgroups",
    "probe",
    "process_filter",
    "python_roots",
    "remove_tree",
    "run_bounded",
]


@functools.cache
def bootstrap_source() -> str:
    """The text of ``bootstrap.py``, passed to the sandboxed interpreter with ``-c``."""
    return resources.files(__package__).joinpath("bootstrap.py").read_text(encoding="utf-8")
