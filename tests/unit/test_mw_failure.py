"""MarkFailed: which errors become Failed, with which attempts, kept or deleted."""

from __future__ import annotations

import pytest

from djmw.errors import AttemptFailed, PayloadDecodeError, PermanentJobError, RetriesExhausted
from djmw.middleware import MarkFailed
from djmw.outcome import Failed
from djmw.testing import make_job, raising


def test_exhausted_retries_fail_and_keep_the_row() -> None:
    """RetriesExhausted becomes Failed(exhausted) with the last error; kept by default."""
    error = ValueError("boom")
    outcome = MarkFailed()(
        make_job(attempts=24), raising(RetriesExhausted(attempts=25, error=error))
    )
    assert outcome == Failed(attempts=25, error=error, delete=False, exhausted=True)


def test_handler_permanent_error_counts_its_attempt() -> None:
    """A PermanentJobError from the handler fails at once with the counted attempts."""
    error = PermanentJobError("bad input")
    outcome = MarkFailed()(make_job(), raising(AttemptFailed(attempts=1, error=error)))
    assert outcome == Failed(attempts=1, error=error)


def test_decode_error_keeps_attempts() -> None:
    """An undecodable handler fails with attempts unchanged."""
    error = PayloadDecodeError("Job failed to load: x")
    outcome = MarkFailed()(make_job(attempts=2), raising(error))
    assert outcome == Failed(attempts=2, error=error)


def test_delete_failed_and_per_job_override() -> None:
    """delete_failed=True deletes; a job's destroy_failed override wins over it."""
    exhausted = RetriesExhausted(attempts=1, error=ValueError())
    assert MarkFailed(delete_failed=True)(make_job(), raising(exhausted)).delete  # type: ignore[union-attr]
    kept = MarkFailed(delete_failed=True)(make_job(destroy_failed=False), raising(exhausted))
    assert isinstance(kept, Failed)
    assert not kept.delete


def test_retryable_errors_pass_through() -> None:
    """A retryable failure is not MarkFailed's business."""
    with pytest.raises(AttemptFailed):
        MarkFailed()(make_job(), raising(AttemptFailed(attempts=1, error=ValueError())))
