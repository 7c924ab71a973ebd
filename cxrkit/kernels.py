"""The Jupyter kernel manager ``cxrkit run`` executes notebooks with: a kernel reached over Unix sockets.

A kernel started over TCP without CurveZMQ keys warns, on every start, that "all communication … is sent in
plain text": any local user who can reach 127.0.0.1 could read it. Over IPC the kernel's sockets are files in
the user's private Jupyter runtime folder, guarded by the file system, and the warning has no cause. Used by
:func:`cxrkit.runner.execute_notebook` (``make run``, ``cxrkit spread``, ``cxrkit reproduce``).
"""
from __future__ import annotations

import secrets
from pathlib import Path

from jupyter_client import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from traitlets import default


class IPCKernelManager(AsyncKernelManager):
    """An asynchronous kernel manager whose kernel listens on Unix sockets in the Jupyter runtime folder."""

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"

    @default("ip")
    def _default_ip(self) -> str:
        # the sockets' path prefix (jupyter_client appends "-<port>" and removes the files at shutdown)
        runtime = Path(jupyter_runtime_dir())
        runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        return str(runtime / f"cxrkit-kernel-{secrets.token_hex(4)}")
