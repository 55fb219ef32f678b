"""Schemathesis hooks: what the OpenAPI document cannot say in JSON Schema.

- The `hello-name` format (NFC, letters of one script, ...): positive cases draw names from
  one script at a time, as real names are; negative cases still break length and type.
- Cross-field rules, for positive cases only: a POST names its sender in the body or the
  query (neither is a 400, by the contract); a `from` in the query equals the body's `from`
  when both are sent (else 400); each POST gets a fresh Idempotency-Key (reusing a key for a
  different hello is a 422, tested in crates/hello-service/tests/api).
- Waits: a valid `wait` is kept to a second (a read waits that long for a hello fuzzing never
  sends).
- The bearer scheme's format: a token is `hw_` and 43 URL-safe characters (the document's
  `bearerFormat`). A positive case that carries an `Authorization` header gets a well-formed
  token (a made-up one, so a claimed name answers 401, as the document says); an empty or
  oversized credential is a malformed header, 400 by the contract, so it is not "schema-valid".
"""

import re
import secrets
import uuid

import schemathesis
from hypothesis import strategies as st

SCRIPTS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéüøñßÅ",
    "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔΣΩ",
    "абвгдежзийклмнопрстуфхцчшщыэюяАБВГД",
    "山田東京李小龍愛",
    "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
]
DIGITS = "0123456789"
WELL_FORMED_BEARER = re.compile(r"Bearer hw_[A-Za-z0-9_-]{43}")


def names_in(letters: str) -> st.SearchStrategy[str]:
    first = st.sampled_from(letters + DIGITS)
    rest = st.text(alphabet=letters + DIGITS + "._-", max_size=63)
    return st.tuples(first, rest).map("".join)


schemathesis.openapi.format("hello-name", st.one_of(*(names_in(letters) for letters in SCRIPTS)))


@schemathesis.hook
def map_case(context, case):
    # A read with `wait` on an empty inbox is held until its time is up (fuzzing sends it no
    # hello): waiting out 20 s a case is time, not coverage, and passes the 10 s response-time
    # check. Valid waits are kept to a second; malformed ones go as generated (they are a 400).
    wait = (case.query or {}).get("wait")
    if wait is not None and str(wait).strip().isdigit() and int(str(wait).strip()) > 1:
        case.query["wait"] = "1"
    meta = case.meta
    if meta is None or meta.generation.mode.is_negative:
        return case
    if case.method.upper() == "POST":
        body_from = case.body.get("from") if isinstance(case.body, dict) else None
        if case.query and "from" in case.query and isinstance(body_from, str):
            case.query["from"] = body_from
        if body_from is None and not (case.query and "from" in case.query):
            case.query = {**(case.query or {}), "from": "alice"}
        if case.headers and "Idempotency-Key" in case.headers:
            case.headers["Idempotency-Key"] = str(uuid.uuid4())
    return case


@schemathesis.hook
def before_call(context, case, **kwargs):
    """Right before sending, when every phase (examples included) has applied its auth."""
    meta = case.meta
    if meta is None or meta.generation.mode.is_negative:
        return
    authorization = (case.headers or {}).get("Authorization")
    if authorization is not None and not WELL_FORMED_BEARER.fullmatch(authorization):
        case.headers["Authorization"] = f"Bearer hw_{secrets.token_urlsafe(32)}"
