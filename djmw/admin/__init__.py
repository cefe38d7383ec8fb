"""The operations API: see, retry, delete, prune and check delayed_jobs rows.

``Jobs`` is the one entry point; ``djmw jobs ...`` and any dashboard are thin layers over
it. It sits above ``djmw.backends`` (SQL through the dialect hooks of ``SqlBackend``) and
``djmw.ruby`` (the worker's decoder names the rows), and below the worker, whose
``prune_failed_after`` option runs a ``Pruner``::

    from djmw.admin import JobFilter, Jobs

    with Jobs(database="mysql://root@127.0.0.1:3306/app") as jobs:
        page = jobs.list(JobFilter(state="failed", name="Reports::*"), limit=50)
        jobs.retry(JobFilter(state="failed", queues=["mailers"]))
        jobs.prune("30d")
"""

from __future__ import annotations

from djmw.admin.durations import human, parse_duration, parse_time
from djmw.admin.jobs import Jobs
from djmw.admin.prune import Pruner
from djmw.admin.reports import (
    CheckResult,
    FailureGroup,
    FailureSummary,
    Group,
    Stats,
    Timeline,
)
from djmw.admin.rows import Change, Decoding, JobDetail, JobRow, Page
from djmw.admin.scope import STATES, JobFilter, Liveness, LockAge, State

__all__ = [
    "Jobs",
    "JobFilter",
    "State",
    "STATES",
    "Liveness",
    "LockAge",
    "JobRow",
    "Decoding",
    "JobDetail",
    "Page",
    "Change",
    "Stats",
    "Group",
    "FailureGroup",
    "FailureSummary",
    "Timeline",
    "CheckResult",
    "Pruner",
    "parse_duration",
    "parse_time",
    "human",
]
