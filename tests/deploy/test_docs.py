"""The docs point at what exists: every relative link in a Markdown file of the repo resolves to a
tracked file or folder (and an anchor to a heading of that file), and every path or file name
ARCHITECTURE.md names in code (`crates/.../routes`, `batched.rs`, `live/`) is a tracked file or
folder, so that a newcomer following the map finds each module it names."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRACKED = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
FOLDERS = {"/".join(path.split("/")[:depth]) + "/" for path in TRACKED for depth in range(1, path.count("/") + 1)}
NAMED_IN_CODE = re.compile(r"`([\w.{},/-]+(?:/|\.(?:rs|py|sh|js|ya?ml|md|conf|toml|html|css)))`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown text."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")
        found.add(slug)
    return found


def is_tracked(path: str) -> bool:
    return path in TRACKED or path in FOLDERS or path + "/" in FOLDERS


def test_every_relative_link_in_the_docs_resolves():
    broken = []
    for document in (path for path in TRACKED if path.endswith(".md")):
        text = (ROOT / document).read_text(encoding="utf-8")
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target) or target.startswith("#") and not target[1:]:
                continue
            path, _, anchor = target.partition("#")
            resolved = (ROOT / document).parent / path if path else ROOT / document
            relative = resolved.resolve().relative_to(ROOT).as_posix() if path else document
            if path and not is_tracked(relative):
                broken.append(f"{document}: {target}")
            elif anchor and relative.endswith(".md") and anchor not in anchors((ROOT / relative).read_text(encoding="utf-8")):
                broken.append(f"{document}: {target} (no such heading)")
    assert not broken, "links to nothing:\n" + "\n".join(broken)


def test_every_module_architecture_md_names_exists():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = []
    for named in NAMED_IN_CODE.findall(text):
        alternatives = re.match(r"(.*)\{(.*)\}(.*)", named)
        for path in ([alternatives[1] + one + alternatives[3] for one in alternatives[2].split(",")]
                     if alternatives else [named]):
            path = path.rstrip("/")
            if not (is_tracked(path) or any(known.endswith("/" + path) for known in TRACKED)
                    or any(folder.endswith("/" + path + "/") for folder in FOLDERS)):
                missing.append(path)
    assert not missing, f"ARCHITECTURE.md names what the tree does not hold: {missing}"
