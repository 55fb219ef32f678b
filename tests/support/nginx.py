"""nginx for the harness: the pod's own configuration (deploy/nginx), on loopback.

The rewrite itself (where nginx listens, where hello-service is) is scripts/nginx-loopback.sh,
which scripts/run-local.sh uses too: one place knows which lines of nginx.conf those are.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK_SCRIPT = ROOT / "scripts" / "nginx-loopback.sh"


def loopback_conf(listen: str, hello: str, conf: Path = ROOT / "deploy" / "nginx" / "nginx.conf") -> str:
    """The pod's nginx.conf (`conf`), listening on `listen` and proxying to `hello` (both
    address:port)."""
    result = subprocess.run([str(LOOPBACK_SCRIPT), listen, hello, str(conf)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip())
    return result.stdout


def prepare(prefix: Path, listen: str, hello: str, release_root: Path = ROOT,
            includes: dict[str, str | Path] | None = None, conf: Path | None = None) -> None:
    """An nginx prefix as the pod's image lays it out: `release_root`'s nginx.conf (or `conf`),
    rewritten for loopback, with its included files beside it, `includes` replacing those of the
    same names (text, or a file to copy), the page in html/ and a writable tmp/. Files are written afresh; copies, not links:
    nginx's workers run as an unprivileged user when the master is root, and may not be allowed
    into the folder the repository was cloned to."""
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    os.chmod(prefix, 0o755)
    os.chmod(prefix / "tmp", 0o755)
    for include in (release_root / "deploy" / "nginx").glob("*.conf"):
        if include.name != "nginx.conf":
            shutil.copy(include, prefix / include.name)
    for name, content in (includes or {}).items():
        if isinstance(content, Path):
            shutil.copy(content, prefix / name)
        else:
            (prefix / name).write_text(content)
    shutil.rmtree(prefix / "html", ignore_errors=True)
    shutil.copytree(release_root / "frontend", prefix / "html")
    conf = conf or release_root / "deploy" / "nginx" / "nginx.conf"
    (prefix / "nginx.conf").write_text(loopback_conf(listen, hello, conf))


def command(prefix: Path) -> list[str]:
    """nginx in the foreground on `prefix`'s nginx.conf, logging errors to its stderr."""
    return ["nginx", "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), "-e", "stderr", "-g", "daemon off;"]


def proxy_conf_head(comment: str, connections: int) -> str:
    """The start of a proxy-only nginx.conf whose every writable path is under the prefix's tmp/,
    up to the open `http {` block: for the stand-ins in front of pods (a Service, an Ingress)."""
    return f"""# {comment}
worker_processes 1;
pid tmp/nginx.pid;
error_log stderr warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
"""
