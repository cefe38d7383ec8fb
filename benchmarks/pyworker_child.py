"""One rubydj-pyworker process for benchmarks/pg_throughput.py (run in its own venv).

rubydj-pyworker 1.2.1 is installed only in the benchmark's environment (``--pyworker-python``
of pg_throughput.py), never with djmw. Usage: ``python pyworker_child.py URL START_AT``.
It waits until START_AT (epoch seconds), runs the worker until the table is empty, and
prints ``<ready epoch> <end epoch>``. Its log lines go to a null handler, at INFO.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from pyworker.job import Job
from pyworker.worker import Worker


class NoopJob(Job):
    """The no-op job every contender runs (pyworker registers it by class name)."""

    def run(self) -> None:
        """Do nothing."""


class Draining(Worker):  # type: ignore[misc]
    """pyworker's loop, ended when the table is empty instead of sleeping."""

    def get_job(self):  # type: ignore[no-untyped-def]
        """Reserve as pyworker does; on nothing, end the run if no row is left at all."""
        while True:
            job = super().get_job()
            if job is not None:
                return job
            self.database.commit()  # pyworker leaves its reserve transaction open
            cursor = self.database.cursor()
            cursor.execute("SELECT count(*) FROM delayed_jobs")
            (left,) = cursor.fetchone()
            self.database.commit()
            if left == 0:
                raise SystemExit(0)


def main() -> None:
    url, start_at = sys.argv[1], float(sys.argv[2])
    logger = logging.getLogger("pyworker")
    logger.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115
    logger.setLevel(logging.INFO)
    logger.propagate = False
    worker = Draining(url, logger=logger)
    worker.sleep_delay = 5
    worker._cursor = worker.database.connect().cursor()
    ready = time.time()
    time.sleep(max(start_at - ready, 0))
    try:
        while True:
            job = worker.get_job()
            worker.handle_job(job)
    except SystemExit:
        pass
    print(f"{ready:.6f} {time.time():.6f}", flush=True)


if __name__ == "__main__":
    main()
