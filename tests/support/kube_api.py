"""A stand-in for the Kubernetes API's Secrets endpoint, for tests of the hello-secrets Job
(deploy/tools/make-secrets.sh): HTTPS on loopback with a certificate of its own, a ServiceAccount
directory like the one Kubernetes mounts (token, namespace, ca.crt), and Secrets kept the way the
API server keeps them: POST creates, or answers 409 AlreadyExists and changes nothing."""

import base64
import json
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN = "sa-token-for-the-test"
NAMESPACE = "scalable-hello"


class FakeApi(ThreadingHTTPServer):
    """The Secrets endpoint of one namespace; `secrets` maps name to the Secret as posted."""
    def __init__(self, address, allow_create=True):
        super().__init__(address, Handler)
        self.secrets = {}
        self.requests = []
        self.allow_create = allow_create


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        api: FakeApi = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        api.requests.append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.answer(401, {"kind": "Status", "message": "Unauthorized"})
        if self.path != f"/api/v1/namespaces/{NAMESPACE}/secrets":
            return self.answer(404, {"kind": "Status", "message": "not found"})
        if not api.allow_create:
            return self.answer(403, {"kind": "Status", "message": "secrets is forbidden"})
        name = body["metadata"]["name"]
        if name in api.secrets:
            return self.answer(409, {"kind": "Status", "reason": "AlreadyExists",
                                     "message": f'secrets "{name}" already exists'})
        api.secrets[name] = body
        self.answer(201, body)

    def answer(self, status, document):
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass



def make_serviceaccount(directory: Path, namespace: str = NAMESPACE) -> Path:
    """The files Kubernetes mounts for a ServiceAccount, with a CA that signed the API's certificate
    for 127.0.0.1. Returns the API's private key (for `start`)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory.parent / "api.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(directory / "ca.crt")], check=True, capture_output=True)
    (directory / "token").write_text(TOKEN)
    (directory / "namespace").write_text(namespace)
    return key


def start(serviceaccount: Path, key: Path, **options) -> FakeApi:
    """Serves on 127.0.0.1 (a free port) until `stop`."""
    api = FakeApi(("127.0.0.1", 0), **options)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(serviceaccount / "ca.crt", key)
    api.socket = context.wrap_socket(api.socket, server_side=True)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    return api


def stop(api: FakeApi) -> None:
    api.shutdown()
    api.server_close()


def secret_values(secret: dict) -> dict:
    """A Secret's values, decoded."""
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
