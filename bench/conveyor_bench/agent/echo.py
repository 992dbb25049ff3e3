"""A network peer that answers every line 50 ms later, and the client the I/O tasks use.

`python -m conveyor_bench.agent.echo` serves on port 7000 (service `io-echo`).
"""

from __future__ import annotations

import asyncio
import os
import socket

PORT = 7000
DELAY = float(os.environ.get("ECHO_DELAY", "0.05"))
HOST = os.environ.get("ECHO_HOST", "io-echo")


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.readline():
            await asyncio.sleep(DELAY)
            writer.write(b"ok\n")
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve() -> None:
    """Answer every line on every connection after DELAY seconds."""
    server = await asyncio.start_server(_answer, "0.0.0.0", PORT, backlog=4096)  # noqa: S104
    print(f"echo: answering after {DELAY * 1000:.0f} ms on :{PORT}", flush=True)
    async with server:
        await server.serve_forever()


def wait_on_network(timeout: float = 10.0) -> None:
    """One request to the echo peer: connect, send a line, wait for the answer."""
    with socket.create_connection((HOST, PORT), timeout=timeout) as sock:
        sock.sendall(b"x\n")
        if not sock.recv(16):
            raise ConnectionError("the echo peer closed the connection")


if __name__ == "__main__":
    asyncio.run(serve())
