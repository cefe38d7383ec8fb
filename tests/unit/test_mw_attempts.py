"""CountAttempts: +1 on failure only; decode failures are never charged."""

from __future__ import annotations

import pytest

from djmw.errors import AttemptFailed, PayloadDecodeError
from djmw.middleware import CountAttempts
from djmw.outcome import Succeeded
from djmw.testing import make_job, raising, returning


def test_success_is_not_counted() -> None:
    """A success passes through with no attempt charged."""
    assert CountAttempts()(make_job(attempts=3), returning()) == Succeeded()


def test_failure_counts_one_attempt() -> None:
    """A failure becomes AttemptFailed with attempts + 1 and the original error."""
    error = ValueError("boom")
    with pytest.raises(AttemptFailed) as info:
        CountAttempts()(make_job(attempts=3), raising(error))
    assert info.value.attempts == 4
    assert info.value.error is error
    assert not info.value.permanent


def test_decode_failure_is_not_counted() -> None:
    """A handler that cannot be loaded leaves attempts unchanged (delayed_job 4.7)."""
    with pytest.raises(PayloadDecodeError):
        CountAttempts()(make_job(attempts=3), raising(PayloadDecodeError("Job failed to load: x")))
