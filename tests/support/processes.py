"""Processes a harness starts: each with its log file, in its own process group, stopped by the
PID it was started with (never by name), as a kubelet stops a container."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def wait_until(predicate, timeout: float, what: str, every: float = 0.05) -> None:
    """Returns once predicate() is true (an OSError counts as not yet); raises after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


class Process:
    """One command, its environment (added to this process's) and its log, `log_dir/name.log`,
    which restarts append to."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path,
                 cwd: Path | None = None):
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.cwd = cwd
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.command, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.cwd,
                start_new_session=True,  # its own process group: nginx's workers go with their master
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.running:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """kill -9, as when a container crashes: the process and everything it started."""
        self.signal_group(signal.SIGKILL)
        self.wait(10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """`sig` (a graceful stop), then SIGKILL if it has not exited within `timeout`."""
        self.signal_group(sig)
        try:
            self.wait(timeout)
        except RuntimeError:
            pass

    def wait(self, timeout: float) -> None:
        """Waits for the process to exit; kills it and raises if it takes longer than `timeout`."""
        if self.popen is None:
            return
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.popen.wait(timeout=10)
            raise RuntimeError(f"{self.name} did not exit within {timeout:.0f} s of its stop signal")
        finally:
            # Whatever it left in its group (nginx's workers) goes too.
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
