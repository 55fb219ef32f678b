"""A TCP proxy on loopback that delays every chunk by a fixed time in each direction: the store
as if it were on another node. Delays, never throttles: each chunk is delivered `delay` after it
arrived, in order, however many are on their way.

Run: python3 -m bench.delay_proxy --listen 127.0.0.1:PORT --to 127.0.0.1:PORT --delay-ms 0.5
Loopback only: it refuses any other address.
"""

import argparse
import asyncio
import ipaddress


def loopback(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"{address} is not on loopback: this proxy serves and reaches loopback only")
    return host, int(port)


async def carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copies reader to writer, each chunk `delay` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue = asyncio.Queue()

    async def receive() -> None:
        while True:
            data = await reader.read(1 << 16)
            chunks.put_nowait((loop.time() + delay, data))
            if not data:
                return

    async def deliver() -> None:
        while True:
            due, data = await chunks.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(receive(), deliver())
    except (ConnectionError, asyncio.IncompleteReadError):
        writer.close()


async def serve(listen: tuple[str, int], target: tuple[str, int], delay: float) -> None:
    async def connection(client_reader, client_writer):
        try:
            store_reader, store_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(carry(client_reader, store_writer, delay), carry(store_reader, client_writer, delay),
                             return_exceptions=True)

    server = await asyncio.start_server(connection, *listen)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--delay-ms", type=float, default=0.5)
    args = parser.parse_args()
    asyncio.run(serve(loopback(args.listen), loopback(args.to), args.delay_ms / 1000))


if __name__ == "__main__":
    main()
