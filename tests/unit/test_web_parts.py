"""The dashboard's parts that need no database: settings and the bind rule, credentials,
CSRF tokens, visible row text and chart geometry."""

# ruff: noqa: S105, S106
from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from djmw.admin import Jobs
from djmw.backends import open_backend
from djmw.errors import ConfigurationError
from djmw.web import charts, security, text
from djmw.web.app import _clean_back, _filter, _glob_escape, _notice
from djmw.web.settings import WebSettings, check_bind, from_sources, is_loopback
from djmw.web.summaries import PendingCounts, Reader


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104 - the address under test
        ("::", False),
        ("192.168.1.5", False),
        ("dashboard.example.com", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    """Only 127.0.0.0/8, ::1 and localhost count as loopback; a host name never does."""
    assert is_loopback(host) is loopback


def test_a_non_loopback_bind_needs_authentication() -> None:
    """check_bind refuses 0.0.0.0 without credentials, naming how to set them, and
    accepts it with a token or with a basic-auth user and password."""
    with pytest.raises(ConfigurationError, match="DJMW_WEB_TOKEN") as caught:
        check_bind("0.0.0.0", WebSettings())  # noqa: S104
    assert "127.0.0.1" in str(caught.value)
    check_bind("127.0.0.1", WebSettings())
    check_bind("0.0.0.0", WebSettings(token="t0ken-value"))  # noqa: S104
    check_bind("0.0.0.0", WebSettings(user="ops", password="pw"))  # noqa: S104


def test_settings_come_from_arguments_then_config_then_environment(tmp_path: Path) -> None:
    """Credentials come from the environment unless the config file or an argument
    gives them; the config's host and port are returned apart; [worker].database is the
    fallback database."""
    config = tmp_path / "djmw.toml"
    config.write_text(
        '[worker]\ndatabase = "sqlite:///w.db"\n[web]\nuser = "ops"\npassword = "from-file"\n'
        'host = "0.0.0.0"\nport = 9000\n',
        encoding="utf-8",
    )
    environ = {"DJMW_WEB_TOKEN": "env-token", "DJMW_WEB_USER": "x", "DJMW_WEB_PASSWORD": "y"}
    settings, server = from_sources({"read_only": True}, config=config, environ=environ)
    assert (settings.user, settings.password, settings.token) == ("ops", "from-file", "env-token")
    assert settings.database == "sqlite:///w.db"
    assert settings.read_only is True
    assert server == {"host": "0.0.0.0", "port": 9000}  # noqa: S104
    settings, _ = from_sources({"token": "arg-token"}, environ=environ)
    assert settings.token == "arg-token"


def test_bad_settings_name_the_entry_and_never_show_a_secret(tmp_path: Path) -> None:
    """An unknown [web] key is named; half a basic-auth pair is refused; a bad secret is
    named without its value; repr never shows a token or a password."""
    config = tmp_path / "djmw.toml"
    config.write_text('[web]\ntokn = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="unknown \\[web\\] key 'tokn'"):
        from_sources(config=config, environ={})
    with pytest.raises(ConfigurationError, match="both user and password"):
        WebSettings(user="ops")
    with pytest.raises(ConfigurationError, match="password must be non-empty") as caught:
        WebSettings(user="ops", password="   ")
    assert "   " not in str(caught.value).replace("must be non-empty", "")
    shown = repr(WebSettings(token="s3cr3t-token", user="ops", password="hunter2-pw"))
    assert "s3cr3t-token" not in shown
    assert "hunter2-pw" not in shown


def _scope(headers: dict[str, str], path: str = "/", method: str = "GET") -> dict[str, object]:
    return {
        "type": "http",
        "path": path,
        "method": method,
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


def test_credentials_are_checked() -> None:
    """A bearer token, the token's login cookie or basic-auth credentials let a request
    in; a wrong one, a wrong user or no credentials do not."""
    token_guard = security.Guard(None, WebSettings(token="right-token"), None)
    assert token_guard.allowed(_scope({"Authorization": "Bearer right-token"}))
    assert not token_guard.allowed(_scope({"Authorization": "Bearer wrong-token"}))
    cookie = f"{security.AUTH_COOKIE}={security.session_value('right-token')}"
    assert token_guard.allowed(_scope({"Cookie": cookie}))
    assert not token_guard.allowed(_scope({"Cookie": f"{security.AUTH_COOKIE}=right-token"}))
    assert not token_guard.allowed(_scope({}))

    basic = security.Guard(None, WebSettings(user="ops", password="pa:ss"), None)

    def auth(pair: str) -> dict[str, object]:
        return _scope({"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()})

    assert basic.allowed(auth("ops:pa:ss"))
    assert not basic.allowed(auth("ops:pa"))
    assert not basic.allowed(auth("root:pa:ss"))
    assert not basic.allowed(_scope({"Authorization": "Basic !!notbase64"}))
    assert not basic.allowed(_scope({"Authorization": "Bearer pa:ss"}))


def test_csrf_tokens_match_their_cookie_and_origin() -> None:
    """A form token is valid only with the cookie it was made for, under the same key,
    and not from another origin or site."""
    csrf = security.Csrf("key")
    cookie = security.Csrf.new_cookie()
    token = csrf.token(cookie)
    jar = {"Cookie": f"{security.CSRF_COOKIE}={cookie}", "Host": "127.0.0.1:8080"}
    assert csrf.valid(_scope(jar), token)
    assert not csrf.valid(_scope(jar), token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert not csrf.valid(_scope(jar), None)
    assert not csrf.valid(_scope({"Host": "127.0.0.1:8080"}), token)
    assert not security.Csrf("other key").valid(_scope(jar), token)
    assert csrf.valid(_scope({**jar, "Origin": "http://127.0.0.1:8080"}), token)
    assert not csrf.valid(_scope({**jar, "Origin": "http://evil.example"}), token)
    assert not csrf.valid(_scope({**jar, "Origin": "null"}), token)
    assert not csrf.valid(_scope({**jar, "Sec-Fetch-Site": "cross-site"}), token)


def test_row_text_is_shown_with_visible_escapes() -> None:
    """Control, bidi and zero-width characters become escapes; blocks keep their lines;
    long values are cut with a note; None is a dash."""
    assert text.visible("a\u202eb\u200bc\x00d\x1be\nf") == "a\\u202eb\\u200bc\\0d\\ee\\nf"
    assert text.visible("x" * 10, 5) == "xxxx…"
    assert text.visible(None) == "-"
    assert text.block("one\ntwo\u2066") == "one\ntwo\\u2066"
    cut = text.block("y" * 100, limit=10)
    assert cut.startswith("y" * 10)
    assert "100 characters in all" in cut
    assert text.block(b"raw \xff bytes") == "raw \ufffd bytes"


def test_charts_scale_bars_to_the_peak() -> None:
    """The tallest bar fills the plot, an empty hour has no height, and the labels run
    from -24h to now (past) or now to +24h (future)."""
    past = charts.bars("f", [0] * 23 + [4], past=True)
    assert past.peak == 4
    assert past.total == 4
    assert past.bars[0].height == 0
    assert past.bars[-1].height == pytest.approx(charts.HEIGHT - charts.BOTTOM - 4)
    assert past.bars[-1].title == "4 (the last hour)"
    assert [label for _, label in past.labels] == ["-24h", "-18h", "-12h", "-6h", "now"]
    future = charts.bars("s", [1] * 24, past=False)
    assert next(label for _, label in future.labels) == "now"
    assert future.bars[0].title == "1 (in 0 to 1 h)"


def test_request_filters() -> None:
    """Query parameters become a JobFilter; a bad state is refused; queue_null selects
    the NULL queue; return links keep only list filters; notices are built from numbers."""
    jobs_filter, filters = _filter({"state": "failed", "queue": "mailers", "error": "SMTP"})
    assert (jobs_filter.state, jobs_filter.queues, jobs_filter.error) == (
        "failed",
        ("mailers",),
        "SMTP",
    )
    assert _filter({"queue": "x", "queue_null": "on"})[0].queues == (None,)
    assert filters["name"] == ""
    with pytest.raises(Exception, match="state must be one of"):
        _filter({"state": "nope"})
    assert _clean_back("state=failed&next=//evil.example&after=5") == {
        "state": "failed",
        "after": "5",
    }
    assert _notice({"done": "retry", "n": "3", "held": "1"}) == (
        "Retried 3 rows. Left alone 1 row held by a live worker."
    )
    assert _notice({"done": "<script>", "n": "1"}) is None
    assert _glob_escape("A*[b]?") == "A[*][[]b][?]"


def test_asks_for_one_filters_count_share_one_scan(tmp_path: Path) -> None:
    """Bulk counts: asks for the same filter while its count runs, and just after, start
    no second count; another filter gets its own; after ``invalidate`` (an action
    changed rows) the next ask counts again."""
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    backend = open_backend(url, create=True)
    backend.create_schema()
    backend.close()
    reader = Reader(WebSettings(database=url))
    counts = PendingCounts(reader, max_age=60)
    release = threading.Event()
    calls: list[str] = []

    def counter(name: str, value: int) -> Callable[[Jobs], int]:
        def count(jobs: Jobs) -> int:
            calls.append(name)
            release.wait(10)
            return value

        return count

    try:
        assert counts.get("failed", counter("failed", 7), wait=0.0) is None
        assert counts.get("failed", counter("again", 0), wait=0.0) is None
        release.set()
        done = counts.get("failed", counter("again", 0), wait=5.0)
        assert done is not None
        assert done.value == 7
        assert counts.get("failed", counter("again", 0), wait=5.0) == done
        other = counts.get("mailers", counter("mailers", 3), wait=5.0)
        assert other is not None
        assert other.value == 3
        counts.invalidate()
        fresh = counts.get("failed", counter("after", 5), wait=5.0)
        assert fresh is not None
        assert fresh.value == 5
        assert calls == ["failed", "mailers", "after"]
    finally:
        release.set()
        reader.close()
