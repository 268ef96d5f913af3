"""A telnetlib3 server for the interop tests: prints its port, answers one line per prompt.

Run as ``python telnetlib3_server.py``; it serves on 127.0.0.1 (an ephemeral
port, printed on the first line of standard output) until killed.  Each
session reports the terminal it negotiated, then echoes lines until ``quit``.
"""

from __future__ import annotations

import asyncio
import sys

import telnetlib3


async def shell(reader: telnetlib3.TelnetReader, writer: telnetlib3.TelnetWriter) -> None:
    await asyncio.sleep(0.3)  # let TTYPE/NAWS finish
    term = writer.get_extra_info("TERM")
    cols, rows = writer.get_extra_info("cols"), writer.get_extra_info("rows")
    writer.write(f"term={term} size={cols}x{rows}\r\nt3> ")
    while True:
        line = await reader.readline()
        if not line or line.strip() == "quit":
            break
        writer.write(f"you said {line.strip()}\r\nt3> ")
    writer.close()


async def main() -> None:
    server = await telnetlib3.create_server(host="127.0.0.1", port=0, shell=shell)
    port = server.sockets[0].getsockname()[1] if hasattr(server, "sockets") else server.port
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
