"""The class-aware claim against the plain claim, on MariaDB with 100,000 ready rows.

1 % of the rows are this worker's jobs (struct jobs named ``PyJob``, or spread over three
names with ``--names 3``); the rest are Ruby jobs it has no perform function for. Three
claims are timed on the same table:

- ``plain``: ``unknown_jobs="fail"``, takes the first ready row whatever its job;
- ``like``: the class-aware claim with no index for names, which filters on the handler
  text (``handler LIKE '%PyJob%'``);
- ``name index``: the class-aware claim after ``djmw schema --name-index``.

Two layouts: ``interleaved`` (every 100th row is ours) and ``behind`` (all 99,000 foreign
rows come first in ``priority, run_at`` order, as when Ruby workers are down or slow).
Each claim is timed as ``Backend.reserve`` (one round trip: find, lock, read back, commit)
followed by an untimed unlock, so the table is the same for every sample; the median is
printed. Then the SQL and the EXPLAIN of each find statement.

Run: ``.venv/bin/python benchmarks/class_aware_claim.py [--rows 100000] [--names 1]``
(MariaDB on 127.0.0.1, as ``scripts/test`` starts it). It takes about a minute.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta

import pymysql

import djmw
from djmw.backends import ReserveRequest
from djmw.backends.mysql import MysqlBackend

SERVER = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
DATABASE = "djmw_bench_class_aware"
FOREIGN = (
    "--- !ruby/object:Delayed::PerformableMethod\nobject: !ruby/class 'User'\n"
    "method_name: :cleanup\nargs:\n- 30\n"
)


def ours(index: int, names: int) -> str:
    return f"--- !ruby/struct:PyJob{index % names or ''}\nn: {index}\n"


def fresh_table(rows: int, layout: str, names: int) -> MysqlBackend:
    conn = pymysql.connect(**SERVER, autocommit=True)
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        cursor.execute(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4")
    conn.close()
    backend = djmw.open_backend(f"mysql://root@127.0.0.1:3306/{DATABASE}")
    assert isinstance(backend, MysqlBackend)
    backend.create_schema()
    start = backend.clock().replace(microsecond=0) - timedelta(seconds=rows + 60)
    mine = rows // 100
    values = []
    for i in range(rows):
        is_ours = i % 100 == 99 if layout == "interleaved" else i >= rows - mine
        handler = ours(i, names) if is_ours else FOREIGN
        run_at = start + timedelta(seconds=i)
        values.append((0, 0, handler, run_at, run_at, run_at))
    with backend.connection.cursor() as cursor:
        for chunk in range(0, rows, 10_000):
            cursor.executemany(
                "INSERT INTO delayed_jobs (priority, attempts, handler, run_at, created_at, "
                "updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
                values[chunk : chunk + 10_000],
            )
    backend.check_schema()
    return backend


def request(backend: MysqlBackend, names: tuple[str, ...] | None) -> ReserveRequest:
    return ReserveRequest(
        worker_name="bench", now=backend.clock(), max_run_time=4 * 3600, names=names
    )


def claim_once(backend: MysqlBackend, names: tuple[str, ...] | None, *, name_key: bool) -> float:
    """Seconds of one claim; the claimed row is unlocked afterwards (untimed)."""
    backend.name_key = name_key
    ask = request(backend, names)
    started = time.perf_counter()
    job = backend.reserve(ask)
    taken = time.perf_counter() - started
    assert job is not None
    if names is not None:
        handler = job.handler if isinstance(job.handler, bytes) else str(job.handler).encode()
        assert any(name.encode() in handler for name in names)
    backend.unlock(job)
    return taken


def time_claims(
    backend: MysqlBackend, names: tuple[str, ...], samples: int, like_every: int
) -> dict[str, float]:
    """Median seconds per strategy. Samples alternate, so that load from other processes
    on the machine weighs on every strategy alike."""
    taken: dict[str, list[float]] = {"plain": [], "like": [], "index": []}
    for sample in range(samples):
        taken["plain"].append(claim_once(backend, None, name_key=True))
        taken["index"].append(claim_once(backend, names, name_key=True))
        if sample % like_every == 0:
            taken["like"].append(claim_once(backend, names, name_key=False))
    backend.name_key = True
    return {strategy: statistics.median(values) for strategy, values in taken.items()}


def explainable(find: str) -> str:
    """The SELECT inside a find statement: ``SET @djmw_id = (SELECT ...)`` (the plain and
    text claims) or ``SET @djmw_id = NULL; SELECT id INTO @djmw_id ...`` (the index)."""
    find = find.removeprefix("SET @djmw_id = NULL; ")
    if find.startswith("SET @djmw_id = ("):
        return find.removeprefix("SET @djmw_id = (").removesuffix(")")
    return find.replace(" INTO @djmw_id", "", 1)


def show_sql(backend: MysqlBackend, names: tuple[str, ...] | None) -> None:
    claim, values = backend._claim(request(backend, names))
    find = claim.split("; UPDATE", 1)[0]
    conn = backend.connection
    with conn.cursor() as cursor:
        count = find.count("%s")
        text = cursor.mogrify(find, values[:count])
        print(f"    {text}")
        cursor.execute("EXPLAIN " + explainable(text))
        for row in cursor.fetchall():
            print(
                f"    EXPLAIN: table={row[2]} type={row[3]} key={row[5]} rows={row[8]} extra={row[9]}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--names", type=int, default=1, help="how many job names are ours")
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    names = tuple(f"PyJob{i or ''}" for i in range(args.names))
    print(f"{args.rows:,} ready rows, 1 % ours ({', '.join(names)}), MariaDB")
    for layout in ("interleaved", "behind"):
        backend = fresh_table(args.rows, layout, args.names)
        backend.create_name_index()
        backend.check_schema()
        assert backend.name_key
        like_every = 20 if layout == "behind" else 1
        medians = time_claims(backend, names, args.samples, like_every)
        plain, like, indexed = medians["plain"], medians["like"], medians["index"]
        print(f"\n{layout} ({args.samples} samples of each, alternating):")
        print(f"  plain claim        {plain * 1000:8.3f} ms")
        print(f"  class-aware, LIKE  {like * 1000:8.3f} ms  ({like / plain:.1f}x plain)")
        print(f"  class-aware, index {indexed * 1000:8.3f} ms  ({indexed / plain:.1f}x plain)")
        if layout == "behind":
            print("  find statement, plain:")
            show_sql(backend, None)
            print("  find statement, class-aware with the name index:")
            show_sql(backend, names)
            backend.name_key = False
            print("  find statement, class-aware without it (LIKE):")
            show_sql(backend, names)
        backend.close()
    conn = pymysql.connect(**SERVER, autocommit=True)
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    conn.close()


if __name__ == "__main__":
    main()
