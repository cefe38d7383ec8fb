"""The dashboard in a real browser: headless Chromium from Debian's package
(``scripts/setup_browser.sh``), driven by Playwright through ``executable_path``, against
the dashboard served by uvicorn over real MariaDB and SQLite tables.

The tests click retry, delete and a bulk action and check the rows in the database;
open every page of hostile rows and check that no dialog opens and no script element is
added; and watch the overview refresh itself in place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hostile_corpus as hc
import pytest
import test_hostile_rows as thr
import web_support as ws

import djmw.web
from djmw._clock import utc_now
from djmw.admin import JobFilter, Jobs
from djmw.backends.base import SqlBackend

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), shared by the module's tests."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("no /usr/bin/chromium: scripts/test installs it (scripts/setup_browser.sh)")
        pytest.skip("no /usr/bin/chromium; run scripts/setup_browser.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


@pytest.fixture
def site(db_url: str) -> Iterator[Any]:
    """Serve a dashboard over ``db_url`` (options as for ``djmw.web.app``); yields a
    function returning its base URL."""
    opened: list[Any] = []

    def serve(**options: Any) -> str:
        options.setdefault("summary_wait", 10.0)
        dashboard = djmw.web.app(db_url, **options)
        server = ws.served(dashboard)
        base = server.__enter__()
        opened.append((dashboard, server))
        return base

    yield serve
    for dashboard, server in opened:
        server.__exit__(None, None, None)
        dashboard.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser page that records every dialog and dismisses it (accepts it
    while ``page.accept_dialogs`` is True)."""
    # CSP off: the escaping must hold by itself (and Playwright's waits evaluate script).
    context = browser.new_context(bypass_csp=True)
    tab = context.new_page()
    tab.dialogs = []
    tab.accept_dialogs = False

    def on_dialog(dialog: Any) -> None:
        tab.dialogs.append((dialog.type, dialog.message))
        if tab.accept_dialogs:
            dialog.accept()
        else:
            dialog.dismiss()

    tab.on("dialog", on_dialog)
    yield tab
    context.close()


def test_clicking_retry_delete_and_bulk_retry_changes_the_rows(
    site: Any, page: Any, db: SqlBackend
) -> None:
    """Retry on a list line, Delete on a job page (after its confirm dialog) and a bulk
    retry through its confirmation each change exactly their rows in the database."""
    sample = ws.sample_rows(db, utc_now())
    base = site()
    first, second = sample["failed"][0], sample["failed"][1]

    page.goto(f"{base}/jobs?state=failed")
    page.click(f'[data-test="retry-{first}"]')
    page.wait_for_url(re.compile(r"done=retry"))
    assert "Retried 1 row." in page.inner_text(".notice")
    job = db.job(first)
    assert job is not None
    assert (job.failed_at, job.attempts) == (None, 0)

    page.goto(f"{base}/jobs/{second}")
    page.accept_dialogs = True
    page.click('[data-test="delete"]')
    page.wait_for_url(re.compile(r"done=delete"))
    page.accept_dialogs = False
    assert page.dialogs == [("confirm", f"Delete job {second}?")]
    assert db.job(second) is None

    mailers = [
        row.id
        for row in (db.job(i) for i in sample["failed"])
        if row is not None and row.queue == "mailers" and row.failed_at is not None
    ]
    assert mailers
    page.goto(f"{base}/jobs?state=failed&queue=mailers")
    page.click('[data-test="bulk-retry"]')
    page.wait_for_selector('[data-test="confirm"]')  # a slow count comes in the live part
    assert page.inner_text("h1") == f"Retry {len(mailers)} rows?"
    page.click('[data-test="confirm"]')
    page.wait_for_url(re.compile(r"done=retry"))
    assert f"Retried {len(mailers)} rows." in page.inner_text(".notice")
    for job_id in mailers:
        job = db.job(job_id)
        assert job is not None
        assert (job.failed_at, job.attempts) == (None, 0)
    others = [db.job(i) for i in sample["failed"] if i not in (first, second, *mailers)]
    assert others
    assert all(job is not None and job.failed_at is not None for job in others)


def test_a_slow_bulk_count_fills_in_and_the_page_stops_asking(
    site: Any, page: Any, db: SqlBackend, db_url: str, monkeypatch: Any
) -> None:
    """A bulk confirmation whose count outlasts the page's wait shows "counting" and no
    button; the count and the button appear in place when the count is done, and the page
    then stops asking for its live part."""
    ws.sample_rows(db, utc_now())
    with Jobs(db_url) as jobs:
        expected = jobs.count(JobFilter(state="failed"), guarded=True)
    assert expected > 0
    counted = ws.hold_counts(monkeypatch)
    base = site()
    page.goto(f"{base}/bulk?action=retry&state=failed")
    assert page.is_visible('[data-test="counting"]')
    assert not page.is_visible('[data-test="confirm"]')
    counted.set()
    page.wait_for_selector('[data-test="confirm"]', timeout=15_000)
    assert page.inner_text("h1") == f"Retry {expected} rows?"
    stamp = page.get_attribute("#live", "data-refreshed")
    page.wait_for_timeout(1500)  # three refresh periods
    assert page.get_attribute("#live", "data-refreshed") == stamp


def test_hostile_rows_raise_no_dialog_and_add_no_script(
    site: Any, page: Any, db: SqlBackend, db_url: str
) -> None:
    """Over the hostile-row corpus and rows made of script tags, javascript: URLs,
    attribute-breaking quotes and direction marks, every page (and the overview after a
    live refresh) opens no dialog, has no script element but the dashboard's own, and
    runs none of the rows' code."""
    dialect: hc.Dialect = (
        "mysql"
        if db_url.startswith("mysql")
        else "postgresql"
        if db_url.startswith("postgres")
        else "sqlite"
    )
    db._execute(f"DROP TABLE {db._t}")
    thr.legacy_table(db, dialect)
    corpus = [thr.insert_entry(db, entry) for entry in hc.corpus(dialect)]
    hostile = ws.hostile_rows(db, utc_now())
    base = site(refresh=1.0)
    paths = [
        "/",
        "/failures",
        *(f"/jobs?state={state}" for state in ("all", "ready", "scheduled", "running", "failed")),
        *(f"/jobs/{job_id}" for job_id in hostile),
        *(f"/jobs/{job_id}" for job_id in corpus[::7]),
    ]
    for path in paths:
        page.goto(base + path)
        page.wait_for_load_state("load")
        scripts = page.eval_on_selector_all("script", "nodes => nodes.map(n => n.src)")
        assert scripts == [f"{base}/static/djmw.js"], path
        assert page.evaluate("window.__pwned === undefined"), path
    page.goto(base + "/")
    page.wait_for_function(
        "document.getElementById('live').hasAttribute('data-refreshed')", timeout=15_000
    )
    assert page.eval_on_selector_all("script", "nodes => nodes.length") == 1
    assert page.evaluate("window.__pwned === undefined")
    assert page.dialogs == []
    shown = page.inner_text("#live")
    assert "\\u202e" in shown


def test_the_overview_refreshes_in_place(site: Any, page: Any, db: SqlBackend) -> None:
    """A row that fails while the overview is open shows in its failed count within a
    few seconds, without reloading the page."""
    sample = ws.sample_rows(db, utc_now())
    base = site(refresh=1.0)
    page.goto(base + "/")
    count = page.locator('[data-test="count-failed"] .n')
    assert count.inner_text() == str(len(sample["failed"]))
    page.evaluate("window.__sameDocument = true")
    ws.insert(db, ws.struct("LateJob"), failed_at=utc_now(), last_error="boom")
    page.wait_for_function(
        f"document.querySelector('[data-test=\"count-failed\"] .n').textContent === "
        f"'{len(sample['failed']) + 1}'",
        timeout=20_000,
    )
    assert page.evaluate("window.__sameDocument === true")


def test_list_pages_fit_a_laptop_screen_with_every_action_visible(
    site: Any, browser: Any, db: SqlBackend
) -> None:
    """At 1280 px wide, with long hostile names, queues and errors in the table, no list
    page scrolls sideways and every line's Retry and Delete buttons are on screen, level
    with their line."""
    now = utc_now()
    ws.sample_rows(db, now)
    ws.hostile_rows(db, now)
    base = site()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    try:
        for state in ("all", "failed", "ready", "scheduled", "running"):
            tab.goto(f"{base}/jobs?state={state}")
            width = tab.evaluate("document.documentElement.scrollWidth")
            assert width <= 1280, (state, width)
            layout = tab.eval_on_selector_all(
                "td.actions",
                """cells => cells.map(cell => {
                    const line = cell.parentElement.getBoundingClientRect();
                    const buttons = [...cell.querySelectorAll('button')].map(
                        b => b.getBoundingClientRect());
                    return {top: line.top, bottom: line.bottom, cell: cell.getBoundingClientRect().top,
                            right: Math.max(...buttons.map(b => b.right))};
                })""",
            )
            assert layout, state
            for place in layout:
                assert place["right"] <= 1280, (state, place)
                assert place["cell"] == place["top"], (state, place)
    finally:
        context.close()
