"""Ports on loopback, for the harnesses that start servers."""

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` when asked (bind it soon: another process may take it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts connections on host:port."""
    with socket.socket() as probe:
        probe.settimeout(timeout)
        return probe.connect_ex((host, port)) == 0
