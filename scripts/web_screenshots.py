"""Screenshots of each dashboard page, for docs/ and the README.

Fills an SQLite table with a busy day's rows (tests/web_support.py), serves the dashboard
on a loopback port, and has headless Chromium (Debian's, scripts/setup_browser.sh) take a
PNG of the overview, a list, a job, the failures and a bulk confirmation into docs/.

Run: ``.venv/bin/python scripts/web_screenshots.py [OUT_DIR]``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import web_support as ws  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

import djmw.web  # noqa: E402
from djmw._clock import utc_now  # noqa: E402
from djmw.backends import open_backend  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/jobs.db"
        backend = open_backend(url)
        backend.create_schema()
        ids = ws.sample_rows(backend, utc_now())
        backend.close()
        dashboard = djmw.web.app(url, summary_wait=5.0)
        pages = {
            "dashboard-overview.png": "/",
            "dashboard-failed.png": "/jobs?state=failed",
            "dashboard-job.png": f"/jobs/{ids['failed'][1]}",
            "dashboard-failures.png": "/failures",
            "dashboard-bulk.png": "/bulk?action=retry&state=failed&queue=mailers",
        }
        try:
            with ws.served(dashboard) as base, sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                for name, path in pages.items():
                    page.goto(base + path)
                    page.screenshot(path=str(out / name))
                    print(f"{out / name}: {(out / name).stat().st_size:,} bytes")
                browser.close()
        finally:
            dashboard.close()


if __name__ == "__main__":
    main()
