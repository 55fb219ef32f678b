"""Two real pods (nginx + hello + world) on one nx-27017, from tests/scale/cluster.py.

pod-0 (127.0.0.2:8080) runs the default per-client rate limits: the hostile corpus sends each
request from its own loopback source address, as separate clients would. pod-1 (127.0.0.3:8080)
has the limit lifted for schemathesis, which cannot vary its source address.
"""

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "scale"))

from cluster import Cluster  # noqa: E402


@pytest.fixture(scope="session")
def cluster():
    bin_dir = Path(os.environ.get("BIN_DIR", ROOT / "target" / "debug"))
    with tempfile.TemporaryDirectory(prefix="hostile-") as work:
        cluster = Cluster(
            work=Path(work),
            bin_dir=bin_dir,
            nx=ROOT / ".venv" / "bin" / "nx-27017",
            pod_count=2,
            pod_hello_env={1: {"HELLO_RATE_LIMIT_PER_SECOND": "100000", "HELLO_RATE_LIMIT_BURST": "100000"}},
        )
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()
