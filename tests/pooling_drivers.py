# Run by tests/pooling.rs with the Patroni venv's python: psycopg 3 and psycopg2 through a
# transaction-mode rolegate port given as argv[1]. Any failed check raises (non-zero exit).
import sys

import psycopg
import psycopg2

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
print("ok")
