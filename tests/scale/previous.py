"""The previous release, built from its commit, for the rolling-update scenario: its source is
taken out of this clone's history with `git archive` (no worktree is left behind) into
target/previous-<version>/src, and built there with its own Cargo.lock into its own target folder,
so that its binaries never replace this checkout's. A second run finds it built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from tests.support.pod import ROOT, Release

PREVIOUS_VERSION = "0.1.0"
# The commit 0.1.0 was released from (the base of round two).
PREVIOUS_COMMIT = "8560a77a6d1bfa305317c81ee91ee768f2e6a1eb"


def previous_release(profile: str) -> Release:
    """Builds (or finds built) 0.1.0 with cargo's `profile` (dev or release). Exits with the fix
    when this clone lacks the commit (a shallow clone)."""
    home = ROOT / "target" / f"previous-{PREVIOUS_VERSION}"
    source = home / "src"
    stamp = source / ".commit"
    if not (stamp.exists() and stamp.read_text().strip() == PREVIOUS_COMMIT):
        has_commit = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{PREVIOUS_COMMIT}^{{commit}}"],
                                    capture_output=True).returncode == 0
        if not has_commit:
            sys.exit(f"error: this clone has no commit {PREVIOUS_COMMIT[:7]} (release {PREVIOUS_VERSION}), which the "
                     "rolling-update scenario builds: run `git fetch --unshallow` (a shallow clone lacks history)")
        print(f"==> Taking release {PREVIOUS_VERSION}'s source from commit {PREVIOUS_COMMIT[:7]} into {source}",
              flush=True)
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", PREVIOUS_COMMIT], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(source)], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            sys.exit(f"error: git archive {PREVIOUS_COMMIT[:7]} failed")
        stamp.write_text(PREVIOUS_COMMIT + "\n")
    target = home / "target"
    started = time.monotonic()
    print(f"==> Building release {PREVIOUS_VERSION} (cargo build --profile {profile}, into {target}; "
          "a few minutes the first time)", flush=True)
    built = subprocess.run(["cargo", "build", "--locked", "--quiet", "--bins", "--profile", profile],
                           cwd=source, env={**os.environ, "CARGO_TARGET_DIR": str(target)})
    if built.returncode != 0:
        sys.exit(f"error: building release {PREVIOUS_VERSION} failed (output above); delete {home} and retry")
    print(f"    built in {time.monotonic() - started:.0f} s", flush=True)
    # Its world-service has no Unix socket: its pods wire hello to world over TCP.
    return Release(PREVIOUS_VERSION, source, target / ("debug" if profile == "dev" else profile), world_socket=False)
