"""What observability costs per job: the default chain vs. the same chain plus Metrics,
Trace (no OpenTelemetry SDK configured) and JSON log lines.

Both chains run the same reserved-looking job (handler YAML decoded on every run, a no-op
perform function) in this process, with no database, so that only the middlewares differ;
each logs to a stream that drops what it is given (formatting is measured, not the
terminal), as text (delayed_job's lines, the command's formatter) or as JSON. Rounds of
each alternate; the fastest round of each (the one the other three processes of a
shared machine disturbed least) is printed in microseconds of the job thread's CPU time per
job, with the median of the rounds, the difference and the 20 µs budget.
Run: ``.venv/bin/python benchmarks/observe_overhead.py [--jobs 20000] [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry

import djmw
from djmw.chain import CallNext, compose
from djmw.cli import LOG_FORMAT, TIME_FORMAT, _UtcFormatter
from djmw.middleware import LogOutcome, Metrics, Trace
from djmw.observe.jsonlog import JsonFormatter
from djmw.testing import make_job

HANDLER = "--- !ruby/struct:NoopJob\nn: 1\n"
BUDGET_US = 20.0


class NullStream(io.TextIOBase):
    """A text stream that keeps nothing: no system call per line."""

    def write(self, text: str) -> int:
        return len(text)


def logger_to_null(name: str, formatter: logging.Formatter) -> logging.Logger:
    handler = logging.StreamHandler(NullStream())
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def chains(handlers: djmw.Handlers) -> tuple[CallNext, CallNext]:
    text = logger_to_null("djmw.bench.text", _UtcFormatter(LOG_FORMAT, TIME_FORMAT))
    json_logger = logger_to_null("djmw.bench.json", JsonFormatter())
    default = djmw.default_middlewares(handlers)
    default[2] = LogOutcome(logger=text)
    observed = djmw.default_middlewares(handlers)
    observed[2] = LogOutcome(logger=json_logger)
    observed[1:1] = [Trace(), Metrics(registry=CollectorRegistry())]
    return compose(default, handlers), compose(observed, handlers)


def per_job_us(chain: CallNext, jobs: int) -> float:
    job = make_job(HANDLER, id=1, locked_by="host:bench pid:1", queue="default")
    # CPU time of this thread: time the scheduler gives to other processes of a shared
    # machine is not counted (wall time on a busy 2-core host varies by 2x between rounds).
    started = time.thread_time()
    for _ in range(jobs):
        chain(job)
    return (time.thread_time() - started) / jobs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    handlers = djmw.Handlers({"NoopJob": lambda job: None})
    default, observed = chains(handlers)
    per_job_us(default, 2_000)  # warm both up: caches, label children, imports
    per_job_us(observed, 2_000)
    base: list[float] = []
    full: list[float] = []
    for _ in range(args.rounds):
        base.append(per_job_us(default, args.jobs))
        full.append(per_job_us(observed, args.jobs))
    base_us, full_us = min(base), min(full)
    extra = full_us - base_us
    median_extra = statistics.median(full) - statistics.median(base)
    sdk = "opentelemetry.sdk" in sys.modules
    print(f"jobs per round: {args.jobs}, rounds: {args.rounds}, OpenTelemetry SDK loaded: {sdk}")
    print(f"default chain (text logs):               {base_us:8.2f} µs/job (fastest round)")
    print(f"+ Metrics + Trace (no SDK) + JSON logs:  {full_us:8.2f} µs/job (fastest round)")
    verdict = "within" if extra <= BUDGET_US else "OVER"
    print(
        f"overhead:                                {extra:8.2f} µs/job ({verdict} the {BUDGET_US:g} µs budget)"
    )
    print(f"overhead of the medians:                 {median_extra:8.2f} µs/job")


if __name__ == "__main__":
    main()
