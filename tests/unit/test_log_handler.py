"""delayed_job's log format and the background-flushing handler the command uses."""

from __future__ import annotations

import logging
import sys
import time

from djmw.logs import LOG_FORMAT, TIME_FORMAT, DelayedJobFormatter, LineHandler


class RecordingStream:
    """A text stream that remembers what was written and what was flushed."""

    def __init__(self) -> None:
        self.buffer = ""
        self.flushed = ""

    def write(self, text: str) -> int:
        self.buffer += text
        return len(text)

    def flush(self) -> None:
        self.flushed += self.buffer
        self.buffer = ""


def _record(level: int, msg: str, created: float) -> logging.LogRecord:
    record = logging.LogRecord("djmw", level, __file__, 1, msg, (), None)
    record.created = created
    return record


def test_formatter_writes_delayed_jobs_utc_time_for_each_second() -> None:
    """The cached time text changes with the second and reads as ``%FT%T+0000`` in UTC."""
    formatter = DelayedJobFormatter()
    first = formatter.format(_record(logging.INFO, "a", 1_800_000_000.2))
    same = formatter.format(_record(logging.INFO, "b", 1_800_000_000.9))
    later = formatter.format(_record(logging.INFO, "c", 1_800_000_061.0))
    assert first == "2027-01-15T08:00:00+0000: a"
    assert same == "2027-01-15T08:00:00+0000: b"
    assert later == "2027-01-15T08:01:01+0000: c"


def test_info_lines_wait_and_a_warning_flushes_everything_at_once() -> None:
    """An INFO line is not flushed by the call that logs it; a WARNING flushes it and
    itself, in order."""
    stream = RecordingStream()
    handler = LineHandler(stream, flush_interval=600)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.handle(_record(logging.INFO, "running", time.time()))
    assert (stream.buffer, stream.flushed) == ("running\n", "")
    handler.handle(_record(logging.WARNING, "careful", time.time()))
    assert (stream.buffer, stream.flushed) == ("", "running\ncareful\n")


def test_the_flusher_thread_flushes_a_lone_info_line() -> None:
    """With no later record to push it out, an INFO line still reaches the stream's flush."""
    stream = RecordingStream()
    handler = LineHandler(stream, flush_interval=0.05)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.handle(_record(logging.INFO, "completed", time.time()))
    deadline = time.monotonic() + 5
    while not stream.flushed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.flushed == "completed\n"


def test_a_zero_interval_flushes_every_record() -> None:
    """``flush_interval=0`` behaves as logging.StreamHandler: each record is flushed."""
    stream = RecordingStream()
    handler = LineHandler(stream, flush_interval=0)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.handle(_record(logging.INFO, "one", time.time()))
    assert stream.flushed == "one\n"


def _job_record(**fields: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "djmw", logging.INFO, __file__, 1, "Job %s (id=%d) RUNNING", ("X", 7), None
    )
    record.__dict__.update(fields)
    return record


def test_the_short_path_writes_what_the_standard_formatter_writes() -> None:
    """DelayedJobFormatter's own path for ``<time>: <message>`` gives, for plain
    records, records with a traceback and records with a stack, the text
    ``logging.Formatter`` gives with the same format and time."""
    try:
        raise ValueError("boom")
    except ValueError:
        error = sys.exc_info()
    records = [
        _job_record(),
        _job_record(exc_info=error),
        _job_record(stack_info="Stack (most recent call last):"),
    ]
    for record in records:
        ours = DelayedJobFormatter().format(record)
        record.exc_text = None  # the first format caches the traceback text on the record
        reference = logging.Formatter(LOG_FORMAT, TIME_FORMAT)
        reference.converter = time.gmtime
        assert ours == reference.format(record)
    assert DelayedJobFormatter().format(_job_record()).endswith(": Job X (id=7) RUNNING")


def test_another_format_string_is_honoured() -> None:
    """A DelayedJobFormatter given another format string formats with it."""
    formatter = DelayedJobFormatter("%(levelname)s %(message)s")
    assert formatter.format(_job_record()) == "INFO Job X (id=7) RUNNING"
