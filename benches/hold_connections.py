"""Opens N TLS connections to a proxy, makes one keep-alive request on each, and holds them
idle until stdin closes: the proxy's memory can then be read with N idle connections.

    python3 benches/hold_connections.py 127.0.0.1 18443 10000 /echo/x 'Authorization: Bearer …'

Prints "held N" (connections whose request got a 2xx answer) once they are all up. Used by
scripts/bench-vs-nginx; not part of the tests.
"""

import asyncio
import ssl
import sys


async def open_one(host, port, ctx, request, gate):
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost"), 30
            )
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await asyncio.wait_for(reader.readexactly(length), 30)
            return writer if head.split(b" ", 2)[1].startswith(b"2") else None
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
            return None


async def main():
    host, port, count, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    headers = "".join(f"{h}\r\n" for h in sys.argv[5:])
    request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n".encode()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    gate = asyncio.Semaphore(64)  # handshakes in flight at once
    writers = await asyncio.gather(*(open_one(host, port, ctx, request, gate) for _ in range(count)))
    held = [w for w in writers if w is not None]
    print(f"held {len(held)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for w in held:
        w.close()


asyncio.run(main())
