"""Why a job is or is not runnable now, in the sentences ``djmw jobs show`` prints."""

from __future__ import annotations

from datetime import datetime

from djmw.admin.durations import human
from djmw.admin.rows import JobRow

_LOAD_PREFIX = "Job failed to load: "


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def explain(
    row: JobRow, now: datetime, max_run_time: float, *, registered: bool | None = None
) -> list[str]:
    """Return what will happen to ``row``, first the state, then any problem.

    Examples: ``locked by host:x pid:1 for 12 s``, ``scheduled in 4 min``,
    ``failed 3 days ago after 25 attempts``, ``undecodable: <reason>``,
    ``no handler registered for NewsletterJob`` (when ``registered`` is False).
    """
    job = row.job
    reasons: list[str] = []
    if row.state == "failed" and job.failed_at is not None:
        reasons.append(
            f"failed {human((now - job.failed_at).total_seconds())} ago after "
            f"{_attempts(job.attempts)}"
        )
    elif row.state == "running" and job.locked_at is not None:
        held = (now - job.locked_at).total_seconds()
        reasons.append(
            f"locked by {job.locked_by} for {human(held)}; the lock expires in "
            f"{human(max(max_run_time - held, 0))} (max_run_time)"
        )
    elif row.state == "scheduled" and job.run_at is not None:
        reasons.append(f"scheduled in {human((job.run_at - now).total_seconds())}")
    elif row.state == "ready":
        if job.locked_at is not None and job.locked_by:
            expired = (now - job.locked_at).total_seconds() - max_run_time
            reasons.append(
                f"ready: the lock of {job.locked_by} expired {human(expired)} ago; a "
                "worker would take the job over now"
            )
        else:
            due = (now - job.run_at).total_seconds() if job.run_at is not None else 0.0
            reasons.append(f"ready: a worker would claim it now (due {human(due)} ago)")
    elif row.state == "stuck":
        reasons.append("run_at is NULL: no worker will ever claim it")
    if job.failed_at is None and job.attempts > 0:
        reasons.append(f"retrying after {_attempts(job.attempts)} that failed")
    if row.decoding.error is not None:
        reason = row.decoding.error.removeprefix(_LOAD_PREFIX)
        reasons.append(f"undecodable: {reason}")
        if row.state in ("ready", "scheduled"):
            reasons.append("a worker will fail it at once, attempts unchanged")
    elif registered is False:
        reasons.append(f"no handler registered for {row.name}")
    return reasons
