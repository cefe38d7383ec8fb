"""The command's last line of defence for passwords: djmw.cli.redact.Redactor."""

from __future__ import annotations

import logging

from djmw.cli.redact import Redactor


def test_a_long_password_is_scrubbed_wherever_it_appears() -> None:
    """A password of 8 characters or more is replaced everywhere, as written and decoded."""
    redactor = Redactor.for_urls("mysql://app:s3cr%2Ft-pw@db/app")
    text = "cannot connect with s3cr/t-pw or s3cr%2Ft-pw (mysql://app:s3cr%2Ft-pw@db/app)"
    assert redactor.redact(text) == "cannot connect with *** or *** (mysql://app:***@db/app)"


def test_a_short_password_is_scrubbed_only_after_a_user_name() -> None:
    """``djmw`` as a password must not garble every line that names the command."""
    redactor = Redactor.for_urls("postgresql://djmw:djmw@127.0.0.1/jobs")
    text = "djmw: cannot connect to postgresql://djmw:djmw@127.0.0.1/jobs"
    assert redactor.redact(text) == "djmw: cannot connect to postgresql://djmw:***@127.0.0.1/jobs"


def test_log_records_are_scrubbed_with_their_arguments_and_tracebacks() -> None:
    """The filter rewrites a record's message (arguments merged) and its traceback text."""
    redactor = Redactor.for_urls("mysql://app:s3cr3t-pw@db/app")
    try:
        raise RuntimeError("driver said s3cr3t-pw")
    except RuntimeError:
        import sys

        record = logging.LogRecord(
            "djmw", logging.ERROR, __file__, 1, "failed: %s", ("s3cr3t-pw",), sys.exc_info()
        )
    assert redactor.filter(record)
    assert record.getMessage() == "failed: ***"
    assert "s3cr3t-pw" not in (record.exc_text or "")
    assert "RuntimeError: driver said ***" in (record.exc_text or "")


def test_urls_without_a_password_hide_nothing() -> None:
    """No password, no secret: text passes unchanged."""
    redactor = Redactor.for_urls("sqlite:///jobs.db", None, "mysql://root@127.0.0.1/x")
    assert redactor.secrets == []
    assert redactor.redact("root@127.0.0.1") == "root@127.0.0.1"
