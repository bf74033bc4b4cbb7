# Run by tests/pooling.rs with the Patroni venv's python: psycopg 3, libpq's pipeline mode
# (through psycopg's pq module, six clients at once), psycopg2 and asyncpg through a
# transaction-mode rolegate port given as argv[1] (a pool of two server connections). Any
# failed check raises (non-zero exit).
import asyncio
import sys
import threading

import asyncpg
import psycopg
import psycopg2
from psycopg import pq

dsn = f"host=127.0.0.1 port={sys.argv[1]} user=postgres dbname=postgres"

with psycopg.connect(dsn, autocommit=True) as c:
    c.execute("CREATE TABLE py_items (id int PRIMARY KEY, name text)")
    # Server-side parameters; from the 6th run psycopg prepares the statement (named).
    for i in range(12):
        row = c.execute("SELECT %s::int * 2, %s::text", (i, f"n{i}")).fetchone()
        assert row == (i * 2, f"n{i}"), row
    for i in range(3):
        row = c.execute("SELECT %s::int + 1", (i,), prepare=True).fetchone()
        assert row == (i + 1,), row

with psycopg.connect(dsn) as c:
    c.execute("INSERT INTO py_items VALUES (%s, %s)", (1, "rolled back"))
    c.rollback()
    c.execute("INSERT INTO py_items VALUES (%s, %s)", (2, "kept"))
    c.commit()
    rows = c.execute("SELECT id, name FROM py_items ORDER BY id").fetchall()
    c.commit()
    assert rows == [(2, "kept")], rows

c2 = psycopg2.connect(dsn)
cur = c2.cursor()
cur.execute("SELECT %s + %s", (40, 2))
assert cur.fetchone()[0] == 42
cur.execute("INSERT INTO py_items VALUES (%s, %s)", (3, "psycopg2 rolled back"))
c2.rollback()
cur.execute("INSERT INTO py_items VALUES (%s, %s)", (4, "psycopg2 kept"))
c2.commit()
cur.execute("SELECT count(*) FROM py_items WHERE id = 3")
assert cur.fetchone()[0] == 0
c2.commit()
c2.close()


def pipelines(worker, errors):
    """libpq pipeline mode with every Sync sent before any answer is read: the server is
    idle (ReadyForQuery 'I') after each Sync while answers are still owed, and must not go
    back to the pool (to another client) before the last one. The sleep holds the answers
    after the second Sync back, so they come in reads of their own."""
    try:
        c = pq.PGconn.connect(dsn.encode())
        assert c.status == pq.ConnStatus.OK, c.error_message
        c.enter_pipeline_mode()
        for rnd in range(20):
            want = []
            for i in range(8):
                n = worker * 1000 + rnd * 10 + i
                sql = b"SELECT $1::int FROM pg_sleep(0.005)" if i == 4 else b"SELECT $1::int"
                c.send_query_params(sql, [str(n).encode()])
                want.append(n)
                if i % 3 == 0:
                    c.pipeline_sync()
            c.pipeline_sync()
            while c.flush() != 0:
                pass
            got, syncs = [], 0
            while syncs < 4:
                r = c.get_result()
                if r is None:
                    continue  # the end of one query's results
                if r.status == pq.ExecStatus.PIPELINE_SYNC:
                    syncs += 1
                elif r.status == pq.ExecStatus.TUPLES_OK:
                    got.append(int(r.get_value(0, 0)))
                else:
                    raise AssertionError(f"{r.status}: {r.error_message}")
            assert got == want, (got, want)
        c.exit_pipeline_mode()
        c.finish()
    except Exception as e:  # collected: a thread's exception would not fail the script
        errors.append(f"worker {worker}: {e!r}")


errors = []
workers = [threading.Thread(target=pipelines, args=(w, errors), daemon=True) for w in range(6)]
for w in workers:
    w.start()
for w in workers:
    w.join(timeout=60)
    assert not w.is_alive(), "a pipeline got no answer within 60 s"
assert not errors, errors


async def with_asyncpg():
    """asyncpg runs every query as a named prepared statement (its statement cache): three
    connections over two servers run statements prepared on the other server."""
    port = int(sys.argv[1])
    conns = [await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
             for _ in range(3)]
    for rnd in range(10):
        for i, c in enumerate(conns):
            n = rnd * 10 + i
            assert await c.fetchval("SELECT $1::int * 2", n) == n * 2
            row = await c.fetchrow("SELECT $1::text AS t, $2::int AS n", f"c{i}", rnd)
            assert (row["t"], row["n"]) == (f"c{i}", rnd), row
    c = conns[0]
    await c.execute("CREATE TABLE apg_items (id int PRIMARY KEY, name text)")
    await c.executemany("INSERT INTO apg_items VALUES ($1, $2)", [(i, f"item {i}") for i in range(1, 101)])
    async with c.transaction():
        # A cursor fetched 7 rows at a time (Execute with a row limit, PortalSuspended).
        ids = [r["id"] async for r in c.cursor("SELECT id FROM apg_items ORDER BY id", prefetch=7)]
        assert ids == list(range(1, 101)), ids
    try:
        async with c.transaction():
            await c.execute("INSERT INTO apg_items VALUES (2000, 'rolled back')")
            await c.fetchval("SELECT 1 / 0")
        raise AssertionError("division by zero must fail")
    except asyncpg.DivisionByZeroError:
        pass
    # COPY FROM STDIN in binary.
    await c.copy_records_to_table("apg_items", records=[(3000 + i, "copied") for i in range(50)])
    # An explicitly prepared statement, run by a connection that changes servers.
    ps = await conns[1].prepare("SELECT name FROM apg_items WHERE id = $1")
    for i in range(1, 20):
        assert await ps.fetchval(i) == f"item {i}"
    # A timeout cancels the query with the key rolegate handed out; the connection goes on.
    try:
        await conns[2].fetchval("SELECT pg_sleep(20)", timeout=0.5)
        raise AssertionError("pg_sleep(20) must time out")
    except asyncio.TimeoutError:
        pass
    assert await conns[2].fetchval("SELECT 42") == 42
    for x in conns:
        await x.close()


asyncio.run(with_asyncpg())
print("ok")
