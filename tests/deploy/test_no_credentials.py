"""No credential value is tracked in git: every Secret is made at deploy time (deploy/tools/
make-secrets.sh). This scans every tracked file for what credentials look like: Kubernetes Secrets
with data, private keys, passwords in connection strings or assignments, this app's bearer tokens
and common cloud keys. A line may be let through only by saying why on that line:
`credential-scan: allow (reason)` (test data made up to exercise a check)."""

import math
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALLOW = re.compile(r"credential-scan: allow \(\S[^)]*\)")

# (what it is, pattern). Values that are references ($(VAR), ${VAR}, <placeholder>) are not values.
PATTERNS = [
    ("a private key", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")),
    ("a password in a connection string",
     re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/@:'\"]+:(?![$<{])[^\s/@'\"]+@")),
    ("a password, token or key assigned a literal",
     re.compile(r"(?i)\b[\w.-]*(?:password|passwd|secret[_-]?key|api[_-]?token|access[_-]?key)[\"']?\s*[:=]\s*"
                r"[\"']?(?![$<{(])(?!(?-i:[A-Z][A-Z0-9_]*)\b)[A-Za-z0-9+/_=-]{8,}")),  # not a CONSTANT_NAME
    ("an AWS access key", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
]
TOKEN = re.compile(r"\bhw_[A-Za-z0-9_-]{43}\b")  # this app's bearer tokens


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def findings(path: str, text: str):
    """(line number, what) for every credential-looking value in one file's text."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if ALLOW.search(line):
            continue
        for what, pattern in PATTERNS:
            if pattern.search(line):
                found.append((number, what))
        for token in TOKEN.findall(line):
            if entropy(token[3:]) > 4.0:  # a real token's 256 random bits, not an example like hw_AAAA...
                found.append((number, "a bearer token"))
    if path.endswith((".yaml", ".yml")):
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            documents = []
        for document in documents:
            if isinstance(document, dict) and document.get("kind") == "Secret" and (
                    document.get("data") or document.get("stringData")):
                found.append((0, f"a Kubernetes Secret with values ({document.get('metadata', {}).get('name')})"))
    return found


def tracked_files():
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in listing.decode().split("\0") if name]


def test_no_tracked_file_holds_a_credential_value():
    problems, scanned = [], 0
    for name in tracked_files():
        path = ROOT / name
        if not path.is_file():
            continue  # deleted in the working tree
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        scanned += 1
        problems += [f"{name}:{line}: {what}" for line, what in findings(name, text)]
    print(f"credential scan: {scanned} tracked text files")
    assert scanned > 100
    assert not problems, "credential-looking values are tracked (make them at deploy time, or mark made-up " \
                         "test data with 'credential-scan: allow (reason)'):\n" + "\n".join(problems)


@pytest.mark.parametrize("path, text", [
    # What 0.2.0 and earlier committed (deploy/base/mongodb-credentials.yaml, app-secret.yaml).
    ("deploy/base/mongodb-credentials.yaml",  # credential-scan: allow (the scan's own test data)
     "apiVersion: v1\nkind: Secret\nmetadata:\n  name: mongodb-credentials\ntype: Opaque\ndata:\n"  # credential-scan: allow (the scan's own test data)
     "  username: aGVsbG8=\n  password: Y2hhbmdlLW1lLWluLXByb2R1Y3Rpb24=\n"),  # credential-scan: allow (the scan's own test data)
    ("deploy/base/app-secret.yaml", "kind: Secret\nmetadata: {name: app-secret}\nstringData:\n  api-token: x\n"),  # credential-scan: allow (the scan's own test data)
    ("crates/x.rs", 'let uri = "mongodb://root:hunter2hunter2@db:27017/";'),  # credential-scan: allow (the scan's own test data)
    (".env", "MONGODB_PASSWORD=correcthorsebattery"),  # credential-scan: allow (the scan's own test data)
    ("values.yaml", "grafana:\n  adminPassword: 'prom-operator-123'\n"),  # credential-scan: allow (the scan's own test data)
    ("key.pem", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI...\n"),  # credential-scan: allow (the scan's own test data)
    ("notes.md", "curl -H 'Authorization: Bearer hw_q8Zr3vT1mN0xYb7KcL2pW9sD4fGh6JkE5aUiOyRtVnB'"),  # credential-scan: allow (the scan's own test data)
])
def test_the_scan_finds_each_kind_of_credential(path, text):
    assert findings(path, text), f"not found in {path}"


@pytest.mark.parametrize("text", [
    'value: "mongodb://$(MONGODB_USERNAME):$(MONGODB_PASSWORD)@mongodb-0.mongodb:27017/hello"',
    "secretKeyRef: {name: mongodb-app, key: password}",
    '#[schema(example = "hw_3q2-7wEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]',
    "MONGO_INITDB_ROOT_PASSWORD_FILE: /etc/mongodb-root/password",
    'cluster.secret("mongodb-root", username="root", password=ROOT_PASSWORD)',
    '"mongodb://u:made-up-pw@h/", // credential-scan: allow (made up, to test the URI check)',
])
def test_references_examples_and_marked_test_data_pass(text):
    assert not findings("file.yaml", text)
