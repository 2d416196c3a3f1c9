"""Commands that start GhostPay's own Python modules as child processes.

`python -m` puts the current folder first on `sys.path`: run from a folder holding a clone named
`ghostpay/`, a child would import that clone instead of the installed package. `-P` (Python 3.11+)
leaves the current folder out, while relative paths in the arguments still resolve against it.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
from typing import Any

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def python_module_command(module: str, *args: str) -> list[str]:
    """The argv that runs `python -m module args...` on this interpreter with the installed package.

    >>> python_module_command("ghostpay.localnet", "--rpc-port", "8899")[1:]
    ['-P', '-m', 'ghostpay.localnet', '--rpc-port', '8899']
    """
    return [sys.executable, "-P", "-m", module, *args]


def _end_with_parent() -> None:
    """Runs in the child before exec: SIGTERM when the parent dies (Linux; elsewhere a child whose parent
    was killed with SIGKILL keeps running)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_attached_child(argv: list[str], **popen: Any) -> subprocess.Popen[Any]:
    """A child that the parent stops itself, and that ends with the parent.

    It runs in a process group of its own, so a terminal's Ctrl-C (SIGINT to the foreground group) reaches
    only the parent, which then stops its children after its own clean-up instead of finding them gone
    mid-command."""
    return subprocess.Popen(argv, start_new_session=True, preexec_fn=_end_with_parent, **popen)
