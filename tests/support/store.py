"""MongoDB for pods that share one store: nx-27017 (a MongoDB wire-protocol server, from PyPI)
on a file, so that a kill -9 loses nothing it acknowledged, on 127.0.0.1."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support.ports import free_port, is_listening
from tests.support.processes import Process, wait_until

ROOT = Path(__file__).resolve().parents[2]
# Where scripts/test.sh installs it (tests/requirements.txt).
NX = ROOT / ".venv" / "bin" / "nx-27017"


class MongoStore:
    """nx-27017 on `work`/store.db; its port is chosen on the first start and kept, so that a
    restarted store is found where the pods were told it is."""

    def __init__(self, work: Path, nx: Path = NX, logs: Path | None = None):
        if not nx.exists():
            raise RuntimeError(f"{nx} is missing: pip install -r tests/requirements.txt into .venv")
        self.work = work
        self.port = free_port()
        logs = logs or work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.process = Process(
            "store",
            [str(nx), "--db", str(work / "store.db"), "--host", "127.0.0.1", "--port", str(self.port),
             "--log-file", str(logs / "nx.log"), "--pid-file", str(work / "nx.pid")],
            {}, logs)

    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> None:
        self.process.start()
        wait_until(lambda: is_listening("127.0.0.1", self.port), 30, "the store (nx-27017) to listen")

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        self.process.signal_group(signal.SIGTERM)
        self.process.wait(15)
