"""The dashboard (``djmw.web``) over real MariaDB and SQLite tables, driven over HTTP
with Starlette's test client: pages, filters and keyset pages, actions and their guards,
CSRF, read-only mode, authentication, mounting under a prefix, and hostile rows.

Every figure a page shows is compared with what the operations API (``djmw.admin.Jobs``)
says about the same table; every action is checked on the rows it leaves.
"""

# ruff: noqa: S105, S106
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import hostile_corpus as hc
import pymysql
import pytest
import test_hostile_rows as thr
import web_support as ws
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

import djmw.web
from djmw import Handlers, Job, Worker
from djmw._clock import utc_now
from djmw.admin import JobFilter, Jobs
from djmw.backends.base import SqlBackend
from djmw.cli import main
from djmw.errors import DjmwError

Client = Callable[..., TestClient]
TOKEN_FIELD = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@pytest.fixture
def client(db_url: str) -> Iterator[Client]:
    """Build a dashboard over ``db_url`` (options as for ``djmw.web.app``) and a test
    client for it; both are closed after the test."""
    opened: list[tuple[djmw.web.Dashboard, TestClient]] = []

    def make(**options: Any) -> TestClient:
        options.setdefault("summary_wait", 10.0)
        dashboard = djmw.web.app(db_url, **options)
        test_client = TestClient(dashboard)
        opened.append((dashboard, test_client))
        return test_client

    yield make
    for dashboard, test_client in opened:
        test_client.close()
        dashboard.close()


@pytest.fixture
def sample(db: SqlBackend) -> dict[str, list[int]]:
    """A busy day's rows (tests/web_support.py)."""
    return ws.sample_rows(db, utc_now())


def rows_of(html: str) -> list[int]:
    """The row ids a list page shows, in order."""
    return [int(i) for i in re.findall(r'<tr data-id="(\d+)"', html)]


def csrf_of(html: str) -> str:
    match = TOKEN_FIELD.search(html)
    assert match is not None, "the page has no action form"
    return match.group(1)


REFRESH_URL = re.compile(r'data-refresh-url="([^"]+)"')


def confirmation(web: TestClient, path: str) -> str:
    """The bulk confirmation at ``path`` once its count is known: the page, or the last
    answer of its live part when the count outlasted the page's wait."""
    html = web.get(path).text
    live = REFRESH_URL.search(html)
    deadline = time.monotonic() + 30
    while 'data-test="counting"' in html:
        assert live is not None, "counting, with no live part"
        assert time.monotonic() < deadline, "the count never came"
        html = web.get(live.group(1).replace("&amp;", "&")).text
    return html


def snapshot(db: SqlBackend) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in db._query(f"SELECT * FROM {db._t} ORDER BY id")]


def test_overview_shows_the_operations_apis_counts(
    client: Client, db_url: str, sample: dict[str, list[int]]
) -> None:
    """The overview shows each state's count, each queue's row and the running worker as
    Jobs.stats counts them, and both charts' totals as Jobs.timeline counts them."""
    html = client().get("/").text
    with Jobs(db_url) as jobs:
        stats, timeline = jobs.stats(), jobs.timeline()
    for state, count in stats.total.counts.items():
        assert re.search(rf'data-test="count-{state}"><span class="n">{count:,}</span>', html), (
            state
        )
    assert sum(timeline.failed) == len(sample["failed"])
    assert (
        f'Failures per hour, last 24 h <span class="muted">({len(sample["failed"])} in all)' in html
    )
    assert f"({sum(timeline.scheduled)} in all)" in html
    assert sum(timeline.scheduled) == len(sample["scheduled"]) + len(sample["retrying"])
    assert ws.LIVE_WORKER in html
    for queue in ("mailers", "reports", "default"):
        assert f"?queue={queue}" in html
    assert "queue_null=1" in html
    assert html.count("<rect ") == 48
    assert 'data-refresh-url="/fragments/overview"' in html
    fragment = client().get("/fragments/overview")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert 'data-test="count-failed"' in fragment.text


@pytest.mark.parametrize("state", ["ready", "scheduled", "running", "failed", "stuck", "all"])
def test_each_state_lists_exactly_the_apis_rows(
    client: Client, db_url: str, sample: dict[str, list[int]], state: str
) -> None:
    """A state's list shows exactly the rows Jobs.list returns for that state, by id."""
    html = client().get(f"/jobs?state={state}").text
    with Jobs(db_url) as jobs:
        expected = [row.id for row in jobs.list(JobFilter(state=state), limit=50).rows]  # type: ignore[arg-type]
    assert rows_of(html) == expected
    assert expected


def test_filters_and_keyset_pages(
    client: Client, db_url: str, sample: dict[str, list[int]]
) -> None:
    """Queue, NULL queue, name and error filters select what the same JobFilter selects;
    pages of 4 follow each other by id with no row twice and none missed."""
    web = client(page_size=4)
    seen: list[int] = []
    url = "/jobs?state=failed"
    while True:
        html = web.get(url).text
        seen += rows_of(html)
        nxt = re.search(r'href="(/jobs\?[^"]+)" data-test="next"', html)
        if nxt is None:
            break
        url = nxt.group(1).replace("&amp;", "&")
    assert seen == sorted(sample["failed"])
    cases = {
        "state=failed&queue=mailers": JobFilter(state="failed", queues=["mailers"]),
        "state=failed&queue_null=1": JobFilter(state="failed", queues=[None]),
        "state=all&name=User.%2A": JobFilter(name="User.*"),
        "state=all&error=smtpfatal": JobFilter(error="smtpfatal"),
        "state=all&error=ReadTimeout&queue=default": JobFilter(
            error="ReadTimeout", queues=["default"]
        ),
    }
    big = client(page_size=100)
    with Jobs(db_url) as jobs:
        for query, jobs_filter in cases.items():
            expected = [row.id for row in jobs.list(jobs_filter, limit=100).rows]
            assert rows_of(big.get(f"/jobs?{query}").text) == expected, query
            assert expected, query
    assert big.get("/jobs?state=bogus").status_code == 400
    assert big.get("/jobs?after=x").status_code == 400


def test_job_page_shows_row_payload_error_and_why(
    client: Client, db_url: str, sample: dict[str, list[int]]
) -> None:
    """A job's page shows its decoded payload, its whole last_error with the backtrace,
    and the operations API's reasons; an undecodable one shows why and its raw handler;
    an unknown id is 404."""
    web = client()
    failed = sample["failed"][1]
    html = web.get(f"/jobs/{failed}").text
    with Jobs(db_url) as jobs:
        detail = jobs.show(failed)
    assert "StructJob(" in html
    assert "Digest 1" in html
    assert "app/jobs/newsletter_job.rb:8:in `perform&#39;" in html
    for reason in detail.why:
        assert reason in html
    broken = web.get(f"/jobs/{sample['undecodable'][0]}").text
    assert "undecodable: " in broken
    assert 'data-test="handler"' in broken
    assert "Legacy::Importer" in broken
    running = web.get(f"/jobs/{sample['running'][0]}").text
    assert f"locked by {ws.LIVE_WORKER}" in running
    assert re.search(r'disabled title="held by a live worker" data-test="retry"', running)
    assert web.get("/jobs/99999999").status_code == 404


def test_failures_are_grouped_by_error(
    client: Client, db_url: str, sample: dict[str, list[int]]
) -> None:
    """The failures page shows Jobs.failures' groups with their counts and links to the
    rows of each group."""
    html = client().get("/failures").text
    with Jobs(db_url) as jobs:
        groups = jobs.failures()
    assert len(groups) == 3
    for group in groups:
        assert group.message in html
        assert f'href="/jobs/{group.newest_id}"' in html
    assert "name=NewsletterJob&amp;error=Net%3A%3ASMTPFatalError" in html


def test_retry_and_delete_one_row(
    client: Client, db: SqlBackend, sample: dict[str, list[int]]
) -> None:
    """Retry from a job's page runs the row again (failed_at NULL, attempts 0, last_error
    kept); delete from a list line removes the row; other rows are unchanged."""
    web = client()
    target, doomed = sample["failed"][0], sample["failed"][2]
    others = [r for r in snapshot(db) if r[0] not in (target, doomed)]
    page = web.get(f"/jobs/{target}").text
    answer = web.post(
        f"/jobs/{target}/retry", data={"csrf": csrf_of(page), "back": "job"}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/jobs/{target}?done=retry&n=1&held=0"
    job = db.job(target)
    assert job is not None
    assert (job.failed_at, job.attempts) == (None, 0)
    assert job.last_error is not None
    assert job.last_error.startswith("PG::ConnectionBad")
    assert "Retried 1 row." in web.get(answer.headers["location"]).text

    listing = web.get("/jobs?state=failed").text
    answer = web.post(
        f"/jobs/{doomed}/delete",
        data={"csrf": csrf_of(listing), "back": "state=failed&queue=mailers"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/jobs?state=failed&queue=mailers&done=delete&n=1&held=0"
    assert db.job(doomed) is None
    assert [r for r in snapshot(db) if r[0] not in (target, doomed)] == others


def test_a_post_without_a_valid_csrf_token_is_refused_and_changes_nothing(
    client: Client, db: SqlBackend, db_url: str, sample: dict[str, list[int]]
) -> None:
    """No token, a wrong token, a token without its cookie, another origin or another
    site: each POST (one row, bulk) gets 403 and the table is unchanged."""
    web = client()
    target = sample["failed"][0]
    good = csrf_of(web.get(f"/jobs/{target}").text)
    before = snapshot(db)
    bulk = {"action": "delete", "state": "failed"}
    attempts: list[tuple[str, dict[str, str], dict[str, str]]] = [
        (f"/jobs/{target}/delete", {}, {}),
        (f"/jobs/{target}/delete", {"csrf": "0" * 64}, {}),
        (f"/jobs/{target}/retry", {"csrf": good}, {"Origin": "http://evil.example"}),
        (f"/jobs/{target}/retry", {"csrf": good}, {"Sec-Fetch-Site": "cross-site"}),
        ("/bulk", {**bulk}, {}),
        ("/bulk", {**bulk, "csrf": good[::-1]}, {}),
    ]
    for path, form, headers in attempts:
        answer = web.post(path, data=form, headers=headers, follow_redirects=False)
        assert answer.status_code == 403, (path, form, headers)
        assert "CSRF" in answer.text
    stranger = client()  # no cookie: the valid token of another browser is useless
    answer = stranger.post(f"/jobs/{target}/delete", data={"csrf": good}, follow_redirects=False)
    assert answer.status_code == 403
    assert snapshot(db) == before


def test_read_only_shows_no_action_and_refuses_every_post(
    client: Client, db: SqlBackend, sample: dict[str, list[int]]
) -> None:
    """In read-only mode no page has an action form or bulk link, and POSTs with a valid
    token are refused (403) and change nothing."""
    web = client(read_only=True)
    target = sample["failed"][0]
    pages = ["/", "/jobs?state=failed", f"/jobs/{target}", "/failures"]
    for path in pages:
        html = web.get(path).text
        assert 'method="post"' not in html, path
        assert "/bulk?" not in html, path
        assert "read-only" in html
    cookie = web.cookies.get("djmw_csrf")
    assert cookie
    app = web.app
    assert isinstance(app, djmw.web.Dashboard)
    token = app.csrf.token(cookie)
    before = snapshot(db)
    for path, form in [
        (f"/jobs/{target}/retry", {"csrf": token}),
        (f"/jobs/{target}/delete", {"csrf": token}),
        ("/bulk", {"csrf": token, "action": "delete", "state": "failed"}),
    ]:
        assert web.post(path, data=form, follow_redirects=False).status_code == 403
    assert web.get("/bulk?action=delete&state=failed").status_code == 403
    live = "/fragments/bulk?action=delete&state=failed"
    assert web.get(live).status_code == 403
    assert snapshot(db) == before


@pytest.fixture
def live_worker(db_url: str, db: SqlBackend) -> Iterator[int]:
    """A real worker thread holding a long job; yields its row id."""
    started, release = threading.Event(), threading.Event()
    handlers = Handlers()

    @handlers.register("LongJob")
    def long_job(job: Job) -> None:
        started.set()
        release.wait(60)

    held = db.enqueue(ws.struct("LongJob"))
    worker = Worker(database=db_url, handlers=handlers, name="host:live pid:1", sleep_delay=0.1)
    worker.start()
    try:
        assert started.wait(30), "the worker did not start the long job"
        yield held
    finally:
        release.set()
        worker.stop()
        worker.join(30)


def test_actions_never_touch_a_row_a_live_worker_holds(
    client: Client, db: SqlBackend, live_worker: int
) -> None:
    """While a real worker runs a long job, retry and delete of its row (by id and in
    bulk) leave the row as it is and say it was held; a free row in the same bulk
    action is deleted."""
    web = client()
    free = ws.insert(db, ws.struct("LongJob"), failed_at=utc_now())
    before = db.job(live_worker)
    assert before is not None
    assert before.locked_by == "host:live pid:1"
    token = csrf_of(web.get(f"/jobs/{free}").text)
    for action in ("retry", "delete"):
        answer = web.post(f"/jobs/{live_worker}/{action}", data={"csrf": token, "back": "job"})
        assert "Left alone 1 row held by a live worker." in answer.text
    confirm = confirmation(web, "/bulk?action=delete&state=all&name=LongJob")
    assert "Delete 1 row?" in confirm
    answer = web.post(
        "/bulk",
        data={"csrf": token, "action": "delete", "state": "all", "name": "LongJob"},
        follow_redirects=False,
    )
    assert "n=1" in answer.headers["location"]
    assert db.job(free) is None
    assert db.job(live_worker) == before


def test_bulk_retry_confirms_the_count_then_acts_on_the_filter(
    client: Client, db: SqlBackend, db_url: str, sample: dict[str, list[int]]
) -> None:
    """The confirmation shows Jobs.count of the filter; confirming retries exactly those
    rows; rows outside the filter are unchanged. A filter that matches nothing offers no
    button; a bulk action without any filter is refused."""
    web = client()
    jobs_filter = JobFilter(state="failed", queues=["mailers"])
    with Jobs(db_url) as jobs:
        count = jobs.count(jobs_filter, guarded=True)
        chosen = {row.id for row in jobs.rows(jobs_filter)}
    html = confirmation(web, "/bulk?action=retry&state=failed&queue=mailers")
    assert f"Retry {count} rows?" in html
    outside = [r for r in snapshot(db) if r[0] not in chosen]
    answer = web.post(
        "/bulk",
        data={"csrf": csrf_of(html), "action": "retry", "state": "failed", "queue": "mailers"},
        follow_redirects=False,
    )
    assert (
        answer.headers["location"]
        == f"/jobs?state=failed&queue=mailers&done=retry&n={count}&held=0"
    )
    for job_id in chosen:
        job = db.job(job_id)
        assert job is not None
        assert (job.failed_at, job.attempts) == (None, 0)
    assert [r for r in snapshot(db) if r[0] not in chosen] == outside
    nothing = confirmation(web, "/bulk?action=delete&state=failed&queue=mailers")
    assert "No row matches" in nothing
    assert 'data-test="confirm"' not in nothing
    assert web.get("/bulk?action=delete&state=all").status_code == 400


def test_a_slow_bulk_count_answers_at_once_and_brings_the_count_live(
    client: Client, db: SqlBackend, db_url: str, sample: dict[str, list[int]], monkeypatch: Any
) -> None:
    """A count that outlasts the page's wait (a million rows): the confirmation answers
    at once with "counting" and no button, and so does its live part while the count
    runs; then the live part brings the count and the button, and tells the page's
    script to stop asking; a reload right after shows that count without a new scan.
    Confirming deletes exactly the rows counted."""
    with Jobs(db_url) as jobs:
        count = jobs.count(JobFilter(state="failed"), guarded=True)
    assert count > 1
    counted = ws.hold_counts(monkeypatch)
    web = client()
    started = time.monotonic()
    page = web.get("/bulk?action=delete&state=failed").text
    assert time.monotonic() - started < 5
    assert 'data-test="counting"' in page
    assert 'data-test="confirm"' not in page
    assert "Delete the matching rows?" in page
    live = REFRESH_URL.search(page)
    assert live is not None
    url = live.group(1).replace("&amp;", "&")
    still = web.get(url)
    assert 'data-test="counting"' in still.text
    assert "X-Djmw-Refresh" not in still.headers
    counted.set()
    done = web.get(url)
    assert done.headers["X-Djmw-Refresh"] == "stop"
    assert f"Delete {count} rows?" in done.text
    assert web.get("/bulk?action=delete&state=failed").text.count(f"Delete {count} rows?") == 1
    answer = web.post(
        "/bulk",
        data={"csrf": csrf_of(done.text), "action": "delete", "state": "failed"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == f"/jobs?state=failed&done=delete&n={count}&held=0"


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
def test_mounted_under_a_path_prefix(
    db_url: str, sample: dict[str, list[int]], framework: str
) -> None:
    """Mounted at /ops/jobs in a Starlette or FastAPI app, every link, form action,
    static file, redirect and cookie path carries the prefix, and actions work."""
    dashboard = djmw.web.app(db_url, summary_wait=10.0)
    host: Any
    if framework == "fastapi":
        host = FastAPI()
        host.mount("/ops/jobs", dashboard)

        @host.get("/health")
        def health() -> dict[str, str]:
            return {"status": "ok"}
    else:
        host = Starlette(routes=[Mount("/ops/jobs", app=dashboard)])
    try:
        with TestClient(host) as web:
            html = web.get("/ops/jobs/").text
            hrefs = re.findall(r'(?:href|src|action|data-refresh-url)="([^"]+)"', html)
            assert hrefs
            assert all(h.startswith("/ops/jobs/") for h in hrefs), hrefs
            assert web.get("/ops/jobs/static/djmw.css").status_code == 200
            assert web.get("/ops/jobs/fragments/overview").status_code == 200
            target = sample["failed"][0]
            page = web.get(f"/ops/jobs/jobs/{target}").text
            assert f'action="/ops/jobs/jobs/{target}/retry"' in page
            cookie_header = web.get("/ops/jobs/failures").headers.get("set-cookie", "")
            assert cookie_header == "" or "Path=/ops/jobs" in cookie_header
            answer = web.post(
                f"/ops/jobs/jobs/{target}/delete",
                data={"csrf": csrf_of(page), "back": "state=failed"},
                follow_redirects=False,
            )
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/ops/jobs/jobs?state=failed")
            if framework == "fastapi":
                assert web.get("/health").json() == {"status": "ok"}
    finally:
        dashboard.close()
    with Jobs(db_url) as jobs:
        assert jobs.list(JobFilter(ids=[target])).rows == []


def test_authentication_by_token_and_by_basic_auth(
    client: Client, sample: dict[str, list[int]]
) -> None:
    """With a token, pages need it (bearer header or the login page's cookie) and answer
    401 with a login form otherwise; with basic auth they answer 401 with a challenge
    until the right user and password come; static files stay open."""
    web = client(token="tok-en-123")
    denied = web.get("/jobs?state=failed")
    assert denied.status_code == 401
    assert 'name="token"' in denied.text
    assert str(sample["failed"][0]) not in denied.text
    assert web.get("/static/djmw.js").status_code == 200
    assert web.get("/", headers={"Authorization": "Bearer tok-en-123"}).status_code == 200
    assert web.post("/login", data={"token": "wrong"}).status_code == 401
    login = web.post("/login", data={"token": "tok-en-123"}, follow_redirects=False)
    assert login.status_code == 303
    assert web.get("/jobs?state=failed").status_code == 200

    basic = client(user="ops", password="pa55-w0rd")
    challenge = basic.get("/")
    assert challenge.status_code == 401
    assert challenge.headers["www-authenticate"].startswith("Basic")
    assert basic.get("/", auth=("ops", "nope")).status_code == 401
    assert basic.get("/", auth=("ops", "pa55-w0rd")).status_code == 200


def test_no_page_shows_a_password(
    db_url: str, sample: dict[str, list[int]], request: pytest.FixtureRequest
) -> None:
    """Neither the basic-auth password nor (on MariaDB) the database URL's password
    appears on any page, error page or header."""
    database = db_url
    db_password = None
    if db_url.startswith("mysql"):
        db_password = "db-S3cret-pw"
        name = db_url.rsplit("/", 1)[1]
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
        with conn.cursor() as cursor:
            cursor.execute(
                "CREATE USER IF NOT EXISTS 'djmw_web'@'127.0.0.1' IDENTIFIED BY %s", [db_password]
            )
            cursor.execute(f"GRANT ALL ON `{name}`.* TO 'djmw_web'@'127.0.0.1'")
        request.addfinalizer(lambda: _drop_user(conn))
        database = f"mysql://djmw_web:{db_password}@127.0.0.1:3306/{name}"
    dashboard = djmw.web.app(database, user="ops", password="basic-S3cret-pw", summary_wait=10.0)
    try:
        with TestClient(dashboard) as web:
            auth = ("ops", "basic-S3cret-pw")
            texts = []
            for path in [
                "/",
                "/jobs",
                f"/jobs/{sample['failed'][0]}",
                "/failures",
                "/bulk?action=retry&state=failed",
                "/jobs/0",
                "/login",
            ]:
                answer = web.get(path, auth=auth)
                texts.append(answer.text + str(answer.headers))
            texts.append(web.get("/").text)
            for text in texts:
                assert "basic-S3cret-pw" not in text
                if db_password:
                    assert db_password not in text
            if db_password:
                assert "djmw_web:***@" in texts[0]
    finally:
        dashboard.close()
    if db_password:
        with pytest.raises(DjmwError) as caught:
            djmw.web.app(database.replace(db_password, "wrong-" + db_password))
        assert db_password not in str(caught.value)


def _drop_user(conn: Any) -> None:
    with conn.cursor() as cursor:
        cursor.execute("DROP USER IF EXISTS 'djmw_web'@'127.0.0.1'")
    conn.close()


#: Markup that must never come out of a row unescaped.
RAW = ("<script>", "<img", "<svg onload", "\u202e", "\u2066", "\x00")


def test_hostile_rows_are_escaped_on_every_page(
    client: Client, db_url: str, db: SqlBackend
) -> None:
    """The hostile-row corpus plus rows with script tags, javascript: URLs, quotes that
    break attributes and direction marks in the handler, last_error, queue and locked_by:
    every page renders, no row text comes out as markup (the page's only script element
    is the dashboard's own), no href holds a javascript: URL, and direction marks are
    shown as escapes."""
    dialect: hc.Dialect = (
        "mysql"
        if db_url.startswith("mysql")
        else "postgresql"
        if db_url.startswith("postgres")
        else "sqlite"
    )
    db._execute(f"DROP TABLE {db._t}")
    thr.legacy_table(db, dialect)
    corpus_ids = [thr.insert_entry(db, entry) for entry in hc.corpus(dialect)]
    hostile = ws.hostile_rows(db, utc_now())
    web = client()
    html_pages = {}
    for path in ["/", "/fragments/overview", "/failures", "/jobs?state=all"]:
        html_pages[path] = web.get(path)
    for state in ("ready", "scheduled", "running", "failed", "stuck"):
        html_pages[state] = web.get(f"/jobs?state={state}&queue={ws.SCRIPT}")
        html_pages[state + "-null"] = web.get(f"/jobs?state={state}&queue_null=1")
    for job_id in [*corpus_ids, *hostile]:
        html_pages[f"job {job_id}"] = web.get(f"/jobs/{job_id}")
    html_pages["bulk"] = web.get(
        f"/bulk?action=delete&state=all&queue={ws.QUOTES}&error={ws.SCRIPT}"
    )
    html_pages["bad filter"] = web.get(f"/jobs?state={ws.SCRIPT}")
    for label, answer in html_pages.items():
        assert answer.status_code in (200, 400), label
        text = answer.text
        for raw in RAW:
            assert raw not in text, (label, raw)
        assert len(re.findall(r"<script\b", text)) == (
            0 if label.startswith("/fragments") else 1
        ), label
        assert not re.search(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", text, re.I), (
            label
        )
    failed_page = html_pages[f"job {hostile[0]}"].text
    assert "&lt;script&gt;window.__pwned" in failed_page
    assert "\\u202e" in html_pages[f"job {hostile[1]}"].text
    assert "&#34;&#39;&gt;&lt;svg onload=alert(&#39;attr&#39;)&gt;" in failed_page
    assert "content-security-policy" in html_pages["/"].headers
    assert "script-src 'self'" in html_pages["/"].headers["content-security-policy"]


def test_djmw_web_command(db_url: str, db: SqlBackend, capsys: pytest.CaptureFixture[str]) -> None:
    """``djmw web`` refuses a non-loopback bind without credentials (exit 2, saying how to
    set them) and a bad database URL without showing its password; on 127.0.0.1 it
    serves the overview until stopped."""
    assert main(["web", "--database", db_url, "--host", "0.0.0.0"]) == 2  # noqa: S104
    assert "without authentication" in capsys.readouterr().err
    assert main(["web", "--database", "mysql://u:Pw-s3cret@127.0.0.1:1/x"]) == 2
    assert "Pw-s3cret" not in capsys.readouterr().err
    port = ws.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJMW_WEB_")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "djmw",
            "web",
            "--database",
            db_url,
            "--port",
            str(port),
            "--read-only",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                    body = answer.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "djmw web did not answer"
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                time.sleep(0.2)
        assert "<h1>Overview</h1>" in body
        assert "read-only" in body
    finally:
        server.terminate()
        server.wait(20)
        if server.stdout is not None:
            server.stdout.close()
