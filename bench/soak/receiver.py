#!/usr/bin/env python3
"""Webhook receiver for the soak run (bench/soak), on 127.0.0.1 only.

Usage: receiver.py PORT COUNTS_CSV. Paths decide the answer:
  /ok       204 at once
  /fail     500 at once (every try fails: retries until the attempts are spent)
  /flaky    500 on every other request, else 204
  /timeout  answers after 12 s (past the service's 10 s per try: a timeout)
Every 30 s it appends `unix_time,path,answered,status` rows with the counts since the last row.
"""
import asyncio
import collections
import sys
import time

counts = collections.Counter()
flip = [0]


async def serve(reader, writer):
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
            path = head.split(b" ", 2)[1].decode()
            status = 204
            if path.startswith("/fail"):
                status = 500
            elif path.startswith("/flaky"):
                flip[0] ^= 1
                status = 500 if flip[0] else 204
            elif path.startswith("/timeout"):
                await asyncio.sleep(12)
            counts[(path, status)] += 1
            reason = b"No Content" if status == 204 else b"Internal Server Error"
            writer.write(b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\n\r\n" % (status, reason))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def report(path):
    while True:
        await asyncio.sleep(30)
        now = int(time.time())
        with open(path, "a") as f:
            for (p, s), n in sorted(counts.items()):
                f.write(f"{now},{p},{s},{n}\n")
        counts.clear()


async def main(port, path):
    with open(path, "w") as f:
        f.write("unix_time,path,status,count\n")
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=256)
    asyncio.create_task(report(path))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
