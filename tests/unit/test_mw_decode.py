"""DecodeYAML: name and payload inward; undecodable handlers carried inward, not raised."""

from __future__ import annotations

import pytest

from djmw import ConfigurationError, DecodeLimits, StructJob
from djmw.job import Job
from djmw.middleware import DecodeYAML
from djmw.middleware.decode import fallback_name
from djmw.outcome import Outcome, Succeeded
from djmw.testing import make_job


def capture(seen: list[Job]):  # type: ignore[no-untyped-def]
    def call_next(job: Job) -> Outcome:
        seen.append(job)
        return Succeeded()

    return call_next


def test_sets_name_and_payload() -> None:
    """A struct handler gives the job its Ruby name and typed fields."""
    seen: list[Job] = []
    DecodeYAML()(make_job("--- !ruby/struct:NewsletterJob\ntext: hi\n"), capture(seen))
    (job,) = seen
    assert job.name == "NewsletterJob"
    assert job.payload == StructJob(class_name="NewsletterJob", fields={"text": "hi"})
    assert job.load_error is None


def test_bad_yaml_goes_inward_as_a_load_error_with_the_tag_name() -> None:
    """Bad YAML is not raised here: the job carries the error and delayed_job's fallback name."""
    seen: list[Job] = []
    outcome = DecodeYAML()(make_job("--- !ruby/struct:Oops\n  : [unclosed\n", id=9), capture(seen))
    assert outcome == Succeeded()
    (job,) = seen
    assert job.name == "Oops"
    assert job.load_error is not None
    assert str(job.load_error).startswith("Job failed to load: ")
    assert job.load_error.job_id == 9


def test_limits_apply() -> None:
    """A handler over the configured size fails to load, saying so."""
    seen: list[Job] = []
    DecodeYAML(limits=DecodeLimits(max_bytes=10))(
        make_job("--- !ruby/struct:A\nn: 1\n"), capture(seen)
    )
    assert seen[0].load_error is not None
    assert "Job failed to load: " in str(seen[0].load_error)


def test_limits_from_a_config_table() -> None:
    """A mapping (a TOML table) is accepted as limits; an unknown key fails at construction."""
    assert DecodeYAML(limits={"max_bytes": 5}).limits.max_bytes == 5  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_bytes"):
        DecodeYAML(limits={"max_byte": 5})  # type: ignore[arg-type]


def test_fallback_name_without_a_tag() -> None:
    """A handler with no Ruby tag is named '<unknown job>' (delayed_job would crash)."""
    assert fallback_name("--- [1, 2\n") == "<unknown job>"
    assert fallback_name(None) == "<unknown job>"
    assert fallback_name(b"--- !ruby/object:Reports::Nightly\n") == "Reports::Nightly"
