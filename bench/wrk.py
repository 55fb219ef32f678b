"""wrk for bench/run.py: running it, reading its report, and the Lua scripts it runs."""

import re
import signal
import subprocess
import time
from pathlib import Path

CONNECTIONS = 64
THREADS = 2


class WrkFailed(Exception):
    """wrk could not run, or did not finish, or its report could not be read."""


def parse_wrk(output: str) -> dict:
    def latency_ms(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    seconds = re.search(r"requests in ([\d.]+)(ms|s|m)", output)
    confirmed = re.search(r"^confirmed (\d+)$", output, re.M)  # printed by LUA_RELIABLE
    refused = re.search(r"^refused (\d+)$", output, re.M)  # printed by the scripts of world's batches
    duration = float(seconds.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[seconds.group(2)] if seconds else float("nan")
    return {
        "pairs_per_s": int(confirmed.group(1)) / duration if confirmed else None,
        "refused": int(refused.group(1)) if refused else None,
        "rps": rps,
        "requests": requests,
        "p50": latency_ms("50"),
        "p99": latency_ms("99"),
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1).strip() if socket_errors else "",
    }


def wrk(url: str, seconds: int, script: Path | None = None) -> dict:
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if script:
        command += ["-s", str(script)]
    result = subprocess.run(command + [url], capture_output=True, text=True)
    if result.returncode != 0:
        raise WrkFailed(f"wrk failed on {url}: {result.stderr}")
    return parse_wrk(result.stdout)


def wrk_counted(url: str, script: Path, done: Path, timeout: float = 600) -> dict:
    """Runs a LUA_COUNTED script until each thread has its share, then stops wrk (SIGINT)."""
    done.mkdir(exist_ok=True)
    for marker in done.iterdir():
        marker.unlink()
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{int(timeout)}s", "--latency", "-s", str(script), url]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while len(list(done.iterdir())) < THREADS and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    finished = len(list(done.iterdir())) == THREADS
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    if not finished:
        raise WrkFailed(f"wrk did not finish {script.name} on {url} within {timeout:.0f} s: {stderr.strip()}")
    return parse_wrk(stdout)


LUA_POST = """
request = function()
  local path = string.format("%s%d", PREFIX, math.random(1, 100000))
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, BODY)
end
"""
LUA_GET = """
request = function()
  return wrk.format("GET", string.format("%s%d", PREFIX, math.random(1, 100000)))
end
"""
# Reliable reads, confirmed: POST PREFIXn/readsQUERY (n below NAMES), then DELETE the Location it
# answered with, on whichever connection asks next. Prints "confirmed N" at the end: read +
# confirm pairs.
LUA_RELIABLE = """
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
receipts = {}
confirmed = 0
request = function()
  local location = table.remove(receipts)
  if location then
    return wrk.format("DELETE", location)
  end
  return wrk.format("POST", string.format("%s%d/reads%s", PREFIX, math.random(0, NAMES - 1), QUERY))
end
response = function(status, headers, body)
  local location = headers["Location"] or headers["location"]
  if status == 201 and location then
    table.insert(receipts, location)
  elseif status == 204 then
    confirmed = confirmed + 1
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("confirmed")
  end
  io.write(string.format("confirmed %d\\n", total))
end
"""
# Requests that walk names PREFIX0 .. PREFIX(NAMES-1) in turn, threads interleaved, each thread
# stopping after its share of COUNT answers: exact fills and reads, not a duration. Run by
# wrk_counted, which ends wrk once every thread has left its marker in DONE. With BATCH set (the
# path is one of world's batch routes), each 200 whose outcome is "refused" is counted, and
# "refused N" printed at the end: a batch is answered 200 whatever became of its calls.
LUA_COUNTED = """
local count = 0
local threads = {}
function setup(thread)
  thread:set("id", count)
  count = count + 1
  table.insert(threads, thread)
end
local sent, answered = 0, 0
refused = 0
request = function()
  local name = (id + sent * THREADS) % NAMES
  sent = sent + 1
  if METHOD == "POST" then
    -- BODY_FORMAT, when set, makes each body from the name's entry in HASHES when that is set
    -- (claims, each with its own token's hash), else from the name itself (PREFIX and number).
    local value = HASHES and HASHES[name + 1] or (PREFIX .. name)
    local body = BODY_FORMAT and string.format(BODY_FORMAT, value) or BODY
    return wrk.format("POST", string.format(PATH, PREFIX, name), {["Content-Type"] = "application/json"}, body)
  end
  return wrk.format("GET", string.format(PATH, PREFIX, name))
end
response = function(status, headers, body)
  answered = answered + 1
  if BATCH and status == 200 and string.find(body, '"refused"', 1, true) then
    refused = refused + 1
  end
  if answered == math.ceil(COUNT / THREADS) then
    -- wrk itself runs for its whole duration: tell bench/run.py this thread is done.
    io.open(string.format("%s/done-%d", DONE, id), "w"):close()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  if BATCH then
    local total = 0
    for _, thread in ipairs(threads) do
      total = total + thread:get("refused")
    end
    io.write(string.format("refused %d\\n", total))
  end
end
"""
# world-service alone: its batch send with one hello per batch (what hello sends for a lone
# request), to a random name PREFIXn; prints "refused N", the sends world refused in a 200.
LUA_WORLD_SEND = """
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
refused = 0
request = function()
  local body = string.format('{"calls":[{"to":"%s%d","from":"bench","request_id":"bench"}]}',
                             PREFIX, math.random(1, 100000))
  return wrk.format("POST", "/v1/hellos", {["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
  if status == 200 and string.find(body, '"refused"', 1, true) then
    refused = refused + 1
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("refused")
  end
  io.write(string.format("refused %d\\n", total))
end
"""

# The bench's owners: name PREFIX<n> is claimed with the token owner_token(n), which the scripts
# below rebuild from n (a well-formed bearer token as long as a real one; not random: a bench).
OWNER_TOKEN_FORMAT = "hw_bench%038d"


def owner_token(number: int) -> str:
    return OWNER_TOKEN_FORMAT % number


# Sends as an owner: from a random claimed name (with its token) to another claimed name.
LUA_OWNER_POST = """
request = function()
  local from, to = math.random(0, NAMES - 1), math.random(0, NAMES - 1)
  local headers = {["Content-Type"] = "application/json",
                   ["Authorization"] = "Bearer " .. string.format(TOKEN_FORMAT, from)}
  return wrk.format("POST", string.format("%s%d", PREFIX, to), headers,
                    string.format('{"from":"%s%d"}', SENDER, from))
end
"""
# Reads of a random claimed name's own inbox, with its token.
LUA_OWNER_GET = """
request = function()
  local name = math.random(0, NAMES - 1)
  local headers = {["Authorization"] = "Bearer " .. string.format(TOKEN_FORMAT, name)}
  return wrk.format("GET", string.format("%s%d", PREFIX, name), headers)
end
"""


def lua(directory: Path, name: str, template: str, prefix: str, body: str = "", **constants) -> Path:
    path = directory / f"{name}.lua"
    header = f'PREFIX = "{prefix}"\nBODY = \'{body}\'\nTHREADS = {THREADS}\n'
    for key, value in constants.items():
        if isinstance(value, str):
            # A Lua long string: no escapes, and quotes inside (a JSON body) stay as they are.
            header += f"{key} = [[{value}]]\n"
        elif isinstance(value, bool):
            header += f"{key} = {'true' if value else 'false'}\n"
        elif isinstance(value, list):
            # A table of strings (hex digests: nothing to escape).
            header += f"{key} = {{" + ",".join(f'"{item}"' for item in value) + "}\n"
        else:
            header += f"{key} = {value!r}\n"
    path.write_text(header + template)
    return path
