#!/usr/bin/env python3
"""Memory per idle client of a pooler (part of benches/compare/run).

    idle_clients.py PORT COUNT PID [USER] [DATABASE]

Reads VmRSS of PID, opens COUNT client connections to 127.0.0.1:PORT and logs each one in
(StartupMessage, trust authentication, until ReadyForQuery), waits a moment, reads VmRSS
again and prints one line:

    clients=4000 ready=4000 failed=0 rss_before_kb=... rss_after_kb=... kb_per_client=...

then closes every connection. Only the standard library is used; the server must not ask
for a password (the benchmark runs the poolers with trust authentication).
"""

import asyncio
import struct
import sys

PROTOCOL_3_0 = 196608
CONCURRENT_LOGINS = 200


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def startup_packet(user, database):
    body = struct.pack("!I", PROTOCOL_3_0)
    for key, value in (("user", user), ("database", database)):
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


async def login(port, packet, gate):
    """Returns the open writer once the server sent ReadyForQuery, else an error string."""
    async with gate:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(packet)
            await writer.drain()
            while True:
                tag, length = struct.unpack("!cI", await reader.readexactly(5))
                body = await reader.readexactly(length - 4)
                if tag == b"Z":
                    return writer
                if tag == b"E":
                    writer.close()
                    return "ErrorResponse: " + body.replace(b"\0", b" ").decode(errors="replace")
                if tag == b"R" and struct.unpack("!I", body[:4])[0] != 0:
                    writer.close()
                    return "server asked for a password"
        except (OSError, asyncio.IncompleteReadError) as e:
            return f"{type(e).__name__}: {e}"


async def main():
    port, count, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    user = sys.argv[4] if len(sys.argv) > 4 else "postgres"
    database = sys.argv[5] if len(sys.argv) > 5 else "postgres"
    packet = startup_packet(user, database)
    gate = asyncio.Semaphore(CONCURRENT_LOGINS)
    before = vm_rss_kb(pid)
    results = await asyncio.gather(*(login(port, packet, gate) for _ in range(count)))
    writers = [r for r in results if not isinstance(r, str)]
    errors = [r for r in results if isinstance(r, str)]
    await asyncio.sleep(1.0)  # let the pooler finish whatever follows a login
    after = vm_rss_kb(pid)
    per_client = (after - before) / len(writers) if writers else float("nan")
    line = (
        f"clients={count} ready={len(writers)} failed={len(errors)} "
        f"rss_before_kb={before} rss_after_kb={after} kb_per_client={per_client:.1f}"
    )
    if errors:
        line += f" first_error={errors[0]!r}"
    print(line, flush=True)
    for writer in writers:
        writer.write(b"X\0\0\0\4")  # Terminate
        writer.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
