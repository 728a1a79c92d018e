#!/usr/bin/env python3
"""A webhook receiver for bench/webhooks.sh, on 127.0.0.1 only: answers 204 at once, or after
SLOW_SECONDS on a path starting with /slow (a receiver that keeps its sender waiting).

Usage: receiver.py PORT. HTTP/1.1 with keep-alive, as the service's client sends; one event
loop, so the receiver's own speed is the same for the drain and for its baseline (wrk).
"""
import asyncio
import sys

ANSWER = b"HTTP/1.1 204 No Content\r\n\r\n"
SLOW_SECONDS = 0.25


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            if head.split(b" ", 2)[1].startswith(b"/slow"):
                await asyncio.sleep(SLOW_SECONDS)
            writer.write(ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
