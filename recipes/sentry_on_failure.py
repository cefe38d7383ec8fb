"""Report every failed attempt to Sentry, and show each job in Sentry's Queues view.

Use this when the team already triages errors in Sentry: each failed attempt becomes an
event tagged with the job's name, id, queue and attempts, and each run a ``queue.process``
transaction, the span operation Sentry's queue monitoring reads.

Drop in (``pip install "djmw[sentry]"``; needs ``sentry_sdk.init(dsn=...)`` at start-up)::

    from recipes.sentry_on_failure import sentry_middlewares

    chain = djmw.default_middlewares(handlers)
    chain[1:1] = sentry_middlewares()            # right inside DecodeYAML
    worker = djmw.Worker(database=url, handlers=handlers, middlewares=chain)

delayed_job equivalent: sentry-ruby's delayed_job integration (an ``error`` hook plus a
``queue.process`` transaction).

Caveats: one event per failed attempt (``report_exhausted_only=True`` keeps only the
failures that end a job). Sentry's logging integration would also turn djmw's FAILED
log lines into events, so ``sentry_middlewares`` tells it to ignore the ``djmw`` logger
(pass ``ignore_djmw_logger=False`` to keep them). Third-party import: sentry_sdk.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import sentry_sdk
from sentry_sdk.integrations.logging import ignore_logger

from djmw import CallNext, Job, Middleware, Outcome, Succeeded
from djmw.middleware import Reporter, ReportErrors


def sentry_reporter() -> Reporter:
    """Return a reporter sending the error to Sentry with the job's tags (``djmw.*``)."""

    def report(error: BaseException, tags: Mapping[str, str]) -> None:
        with sentry_sdk.new_scope() as scope:
            for key, value in tags.items():
                scope.set_tag(f"djmw.{key}", value)
            scope.fingerprint = ["{{ default }}", tags["job_name"]]
            sentry_sdk.capture_exception(error)

    return report


@attrs.frozen
class SentryQueueTransaction:
    """Run the job inside a ``queue.process`` transaction named after the job.

    Where: right inside DecodeYAML, so the name is known.
    """

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the inner chain in the transaction; its status says how it ended."""
        with sentry_sdk.start_transaction(
            op="queue.process", name=job.display_name, source="task"
        ) as transaction:
            transaction.set_data("messaging.message.id", str(job.id))
            transaction.set_data("messaging.destination.name", job.queue or "default")
            transaction.set_data("messaging.message.retry.count", job.attempts)
            if job.run_at is not None:
                latency = (job.clock() - job.run_at).total_seconds() * 1000
                transaction.set_data("messaging.message.receive.latency", max(latency, 0.0))
            outcome = call_next(job)
            transaction.set_status("ok" if isinstance(outcome, Succeeded) else "internal_error")
            return outcome


def sentry_middlewares(
    *, report_exhausted_only: bool = False, ignore_djmw_logger: bool = True
) -> list[Middleware]:
    """Return the transaction and the error reporter, to insert right inside DecodeYAML.

    With ``ignore_djmw_logger`` the ``djmw`` logger's error lines are not sent as
    events a second time.
    """
    if ignore_djmw_logger:
        ignore_logger("djmw")
    return [
        SentryQueueTransaction(),
        ReportErrors(reporter=sentry_reporter(), report_exhausted_only=report_exhausted_only),
    ]
