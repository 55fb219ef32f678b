"""schemathesis with every check against /openapi.json, through a real pod's nginx."""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_schemathesis_finds_no_failure(cluster):
    pod = cluster.pods[1]  # the pod without a per-client limit: schemathesis is one client
    base = pod.url
    result = subprocess.run(
        [str(SCHEMATHESIS), "run", f"{base}/openapi.json", "--url", base, "--checks", "all",
         "--max-examples", "150", "--seed", os.environ.get("SCHEMATHESIS_SEED", "20261124"),
         "--request-timeout", "15", "--no-color"],
        env={**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "PYTHONPATH": str(HERE)},
        capture_output=True, text=True, timeout=900, cwd=HERE,
    )
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
    assert "No issues found" in result.stdout or " 0 failures" in result.stdout or "passed" in result.stdout
