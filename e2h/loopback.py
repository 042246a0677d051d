"""Ports on the loopback interface: every socket this project opens by itself (torch.distributed rendezvous,
Ray, the service, tests) binds 127.0.0.1, so nothing listens on a public interface by accident."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it; a racing process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


if __name__ == "__main__":  # `python -m e2h.loopback`: a free port for shell launchers (launch/run_local.sh)
    print(free_port())
