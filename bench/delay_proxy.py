"""A TCP proxy on loopback that delays every chunk by a fixed time in each direction: the store
as if it were on another node. Delays, never throttles: each chunk is delivered `delay` after it
arrived, in order, however many are on their way.

Two threads a direction: one reads and stamps each chunk with when it is due, one sleeps until
then (time.sleep has microsecond resolution, where asyncio's timers round up to whole
milliseconds) and writes it.

Run: python3 -m bench.delay_proxy --listen 127.0.0.1:PORT --to 127.0.0.1:PORT --delay-ms 0.5
Loopback only: it refuses any other address.
"""

import argparse
import ipaddress
import queue
import socket
import sys
import threading
import time


def loopback(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError
        return host, int(port)
    except ValueError:
        sys.exit(f"{address} is not a loopback address and port (127.0.0.1:PORT): this proxy serves and "
                 "reaches loopback only")


def carry(source: socket.socket, target: socket.socket, delay: float) -> None:
    """Copies source to target, each chunk `delay` seconds after it arrived; closes target's
    sending side when source ends, and both sockets once both directions are done."""
    chunks: queue.SimpleQueue = queue.SimpleQueue()

    def deliver() -> None:
        while True:
            due, data = chunks.get()
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            if not data:
                break
            try:
                target.sendall(data)
            except OSError:
                break
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    sender = threading.Thread(target=deliver, daemon=True)
    sender.start()
    while True:
        try:
            data = source.recv(1 << 16)
        except OSError:
            data = b""
        chunks.put((time.monotonic() + delay, data))
        if not data:
            break
    sender.join()


def connection(client: socket.socket, target: tuple[str, int], delay: float) -> None:
    try:
        store = socket.create_connection(target)
    except OSError:
        client.close()
        return
    for sock in (client, store):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=carry, args=(store, client, delay), daemon=True)
    back.start()
    carry(client, store, delay)
    back.join()
    client.close()
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--delay-ms", type=float, default=0.5)
    args = parser.parse_args()
    listen, target = loopback(args.listen), loopback(args.to)
    server = socket.create_server(listen, reuse_port=False)
    while True:
        client, _ = server.accept()
        threading.Thread(target=connection, args=(client, target, args.delay_ms / 1000), daemon=True).start()


if __name__ == "__main__":
    main()
