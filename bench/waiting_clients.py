"""The clients of bench/waiting.py, each run as its own process so that it has a core's worth of
Python to itself: many readers waiting on a pod, or senders at a steady rate.

  python3 -m bench.waiting_clients readers HOST PORT PREFIX COUNT SOURCES OUT
      COUNT readers, reader i waiting on PREFIX<i> with GET /hello/PREFIX<i>?wait=20 over its own
      keep-alive connection, asking again as soon as answered; connections spread over SOURCES
      (comma-separated loopback addresses to connect from: nginx limits connections per client
      address). Prints "connected" once every reader has asked; stops when stdin closes, then
      writes OUT: {"received": {sender_id: monotonic time}, "answers": N, "errors": {status: N}}.
  python3 -m bench.waiting_clients senders HOST PORT PREFIXES COUNT RATE SECONDS SOURCE OUT
      POSTs at RATE a second for SECONDS to P<random i < COUNT>, P one of the comma-separated
      PREFIXES at random, each from a new sender
      name (its id), over 32 keep-alive connections from SOURCE; writes OUT: {"sent": {id:
      monotonic time of its 201}, "seconds": how long the sends took, "errors": {status: N}}.

Times are time.monotonic(), the system-wide CLOCK_MONOTONIC, comparable between processes.
HTTP/1.1 with Content-Length answers only (what nginx passes on from hello-service).
"""

import asyncio
import json
import random
import resource
import sys
import time
from collections import Counter

WAIT_SECS = 20


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    """Sends one request, reads its answer: (status, body)."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "transfer-encoding":
            raise RuntimeError("a chunked answer: this client reads Content-Length answers only")
    body = await reader.readexactly(length) if length else b""
    return status, body


async def connect(host: str, port: int, source: str):
    return await asyncio.open_connection(host, port, local_addr=(source, 0), limit=1 << 20)


async def one_reader(host, port, name, source, received, counts, started, stop) -> None:
    request = f"GET /hello/{name}?wait={WAIT_SECS} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    reader, writer = await connect(host, port, source)
    first = True
    try:
        while not stop.is_set():
            pending = asyncio.ensure_future(exchange(reader, writer, request))
            if first:
                started.release()
                first = False
            status, body = await pending
            now = time.monotonic()
            counts["answers"] += 1
            if status != 200:
                counts[f"status {status}"] += 1
                counts[f"status {status}: {body[:200].decode(errors='replace')}"] = 1
                await asyncio.sleep(1)
                continue
            for hello in json.loads(body)["hellos"]:
                received.setdefault(hello["from"], now)
    finally:
        writer.close()


async def readers(host: str, port: int, prefix: str, count: int, sources: list[str], out: str) -> None:
    received: dict[str, float] = {}
    counts: Counter = Counter()
    started = asyncio.Semaphore(0)
    stop = asyncio.Event()
    tasks = []
    for index in range(count):
        source = sources[index % len(sources)]
        tasks.append(asyncio.create_task(one_reader(host, port, f"{prefix}{index}", source, received, counts,
                                                    started, stop)))
        if index % 200 == 199:
            await asyncio.sleep(0.01)  # a steady ramp, not a SYN flood
    for _ in range(count):
        await started.acquire()
    print("connected", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    errors = {key: value for key, value in counts.items() if key != "answers"}
    with open(out, "w") as file:
        json.dump({"received": received, "answers": counts["answers"], "errors": errors}, file)


async def senders(host: str, port: int, prefixes: list[str], count: int, rate: float, seconds: float,
                  source: str, out: str) -> None:
    sent: dict[str, float] = {}
    errors: Counter = Counter()
    total = int(rate * seconds)
    queue: asyncio.Queue = asyncio.Queue()
    connections = [await connect(host, port, source) for _ in range(32)]

    async def send(reader, writer) -> None:
        while (item := await queue.get()) is not None:
            sender_id, to = item
            body = json.dumps({"from": sender_id}).encode()
            request = (f"POST /hello/{to} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            status, _ = await exchange(reader, writer, request)
            if status == 201:
                sent[sender_id] = time.monotonic()
            else:
                errors[str(status)] += 1

    workers = [asyncio.create_task(send(*connection)) for connection in connections]
    began = time.monotonic()
    for index in range(total):
        # Each send at its time on a steady schedule, whatever the ones before took.
        delay = began + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        # Unique across sender processes, which each send from their own address.
        sender_id = f"s{source.rsplit('.', 1)[-1]}x{index}"
        queue.put_nowait((sender_id, f"{random.choice(prefixes)}{random.randrange(count)}"))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    took = time.monotonic() - began
    for _, writer in connections:
        writer.close()
    with open(out, "w") as file:
        json.dump({"sent": sent, "seconds": took, "errors": dict(errors)}, file)


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    kind, host, port, prefix, count, *rest = sys.argv[1:]
    if kind == "readers":
        sources, out = rest
        asyncio.run(readers(host, int(port), prefix, int(count), sources.split(","), out))
    elif kind == "senders":
        rate, seconds, source, out = rest
        asyncio.run(senders(host, int(port), prefix.split(","), int(count), float(rate), float(seconds), source,
                            out))
    else:
        sys.exit(f"unknown kind {kind}: readers or senders")


if __name__ == "__main__":
    main()
