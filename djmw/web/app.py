"""The dashboard's pages and actions, as one ASGI app (``Dashboard``).

Pages (paths relative to where the app is mounted):

==================== ==================================================================
``/``                overview: rows per state per queue, the oldest ready job's age,
                     failures per hour (last 24 h) and scheduled jobs per hour (next
                     24 h); its live part is ``/fragments/overview``, refreshed in place
``/jobs``            one state's rows (``state``), filtered by ``queue`` (``queue_null``
                     for the NULL queue), ``name`` (a glob over the decoded name) and
                     ``error`` (text in last_error); keyset pages (``after``)
``/jobs/{id}``       one row, its decoded payload, last_error, and why it runs or not
``/failures``        failed and retrying rows grouped by name and error
``/bulk``            the confirmation of a bulk retry or delete, with the count; a count
                     still running after a moment comes in its live part
                     (``/fragments/bulk``)
==================== ==================================================================

Actions are POSTs with a CSRF token (``/jobs/{id}/retry``, ``/jobs/{id}/delete``,
``/bulk``), absent and refused (403) in read-only mode; each goes through
``djmw.admin.Jobs.retry``/``delete``, whose guard never touches a row a live worker
holds. This module sits on top of the dashboard: it uses ``djmw.admin`` through
``summaries.Reader`` and nothing else of djmw's lower layers.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from djmw.admin import STATES, Change, JobFilter, Jobs
from djmw.admin.plain import pretty
from djmw.backends import DatabaseUrl, parse_url
from djmw.errors import ConfigurationError, DjmwError, JobNotFound
from djmw.web import charts, text
from djmw.web.listing import list_page
from djmw.web.security import (
    AUTH_COOKIE,
    CSRF_COOKIE,
    CSRF_FIELD,
    Csrf,
    Guard,
    cookie_path,
    same_origin,
    session_value,
)
from djmw.web.settings import WebSettings
from djmw.web.summaries import PendingCounts, Reader, Snapshot, Summaries

HERE = Path(__file__).parent
T = TypeVar("T")
#: The filters a list, a bulk action and a return link carry.
FILTER_KEYS = ("state", "queue", "queue_null", "name", "error")
#: A form body larger than this is refused (action forms are a few hundred bytes).
MAX_FORM_BYTES = 65_536
#: How long the bulk confirmation waits for its count before it answers "counting",
#: and how long each ask of its live part waits.
BULK_COUNT_WAIT = 0.2
BULK_FRAGMENT_WAIT = 1.0


class BadRequest(Exception):
    """A request parameter the dashboard cannot use; shown with status 400."""


class Dashboard:
    """The dashboard as an ASGI app: run it with uvicorn, or mount it in a Starlette or
    FastAPI app (``app.mount("/jobs", dashboard)``).

    Args:
        settings: the table, the mode and the credentials (``WebSettings``).

    Opening it opens one database connection, so a bad URL or a missing table fails
    here. Standalone, the server's lifespan closes it; mounted, call ``close()`` when
    the host app stops.
    """

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self.reader = Reader(settings)
        self.summaries = Summaries(self.reader)
        self.counts = PendingCounts(self.reader)
        self.csrf = Csrf(settings.secret)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters.update(
            visible=text.visible, block=text.block, when=text.when, age=text.age
        )
        self.database = _redacted(settings.database)
        routes = [
            Route("/", self.overview, name="overview"),
            Route("/fragments/overview", self.overview_fragment),
            Route("/jobs", self.job_list),
            Route("/jobs/{job_id:int}", self.job_page),
            Route("/jobs/{job_id:int}/{action}", self.job_action, methods=["POST"]),
            Route("/failures", self.failures),
            Route("/bulk", self.bulk_confirm, methods=["GET"]),
            Route("/fragments/bulk", self.bulk_fragment, methods=["GET"]),
            Route("/bulk", self.bulk_action, methods=["POST"]),
            Route("/login", self.login, methods=["GET", "POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        self.app = Starlette(routes=routes, lifespan=self._lifespan)
        self.asgi = Guard(self.app, settings, self.login_required)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.asgi(scope, receive, send)

    def close(self) -> None:
        """Close the dashboard's database connections."""
        self.reader.close()

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # Start counting at once, so the first visitor rarely waits.
        self._overview(wait=0.0)
        yield
        await run_in_threadpool(self.close)

    # -- rendering --------------------------------------------------------------------
    def render(
        self, request: Request, template: str, status: int = 200, **values: Any
    ) -> HTMLResponse:
        """A page, with the context every template uses and the CSRF cookie set."""
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = cookie is None or len(cookie) < 20
        if fresh:
            cookie = Csrf.new_cookie()
        context = {
            "base": _base(request),
            "settings": self.settings,
            "database": self.database,
            "csrf_field": CSRF_FIELD,
            "csrf": self.csrf.token(cast(str, cookie)),
            "read_only": self.settings.read_only,
            "states": STATES,
            "qs": _query,
            **values,
        }
        body = self.templates.get_template(template).render(context)
        response = HTMLResponse(body, status_code=status)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE,
                cast(str, cookie),
                httponly=True,
                samesite="strict",
                path=cookie_path(request.scope),
            )
        return response

    def error(self, request: Request, status: int, message: str) -> HTMLResponse:
        """An error page; ``message`` is plain text (escaped by the template)."""
        return self.render(request, "error.html", status=status, code=status, message=message)

    async def call(self, request: Request, action: Callable[[Jobs], T]) -> T:
        """Run ``action`` on a pooled connection, off the event loop."""
        return await run_in_threadpool(self.reader.call, action)

    # -- overview ---------------------------------------------------------------------
    def _overview(self, wait: float) -> Snapshot[Any] | None:
        def compute(jobs: Jobs) -> tuple[Any, Any]:
            return jobs.stats(by="queue"), jobs.timeline(hours=24)

        return self.summaries.get("overview", compute, max_age=self.settings.refresh, wait=wait)

    def _overview_values(self, snapshot: Snapshot[Any] | None) -> dict[str, Any]:
        values: dict[str, Any] = {"snapshot": snapshot, "stats": None, "charts": ()}
        if snapshot is not None and snapshot.value is not None:
            stats, timeline = snapshot.value
            values["stats"] = stats
            values["charts"] = (
                charts.bars("Failures per hour, last 24 h", timeline.failed, past=True),
                charts.bars("Scheduled jobs per hour, next 24 h", timeline.scheduled, past=False),
            )
        return values

    async def overview(self, request: Request) -> Response:
        """The overview page."""
        snapshot = await run_in_threadpool(self._overview, self.settings.summary_wait)
        return self.render(request, "overview.html", **self._overview_values(snapshot))

    async def overview_fragment(self, request: Request) -> Response:
        """The live part of the overview, for the in-place refresh."""
        snapshot = await run_in_threadpool(self._overview, self.settings.summary_wait)
        return self.render(request, "_overview_live.html", **self._overview_values(snapshot))

    # -- lists --------------------------------------------------------------------------
    async def job_list(self, request: Request) -> Response:
        """One page of rows of a state, filtered."""
        params = request.query_params
        try:
            jobs_filter, filters = _filter(params)
            after = _int(params.get("after"), "after")
        except (BadRequest, ConfigurationError) as exc:
            return self.error(request, 400, str(exc))
        limit = self.settings.page_size
        try:
            page = await self.call(
                request, lambda j: list_page(j, jobs_filter, limit=limit, after=after)
            )
        except DjmwError as exc:
            return self.error(request, 503, str(exc))
        return self.render(
            request,
            "list.html",
            page=page,
            filters=filters,
            after=after,
            bulk=_bulk_allowed(filters),
            back=urlencode({k: v for k, v in filters.items() if v}),
            notice=_notice(params),
        )

    # -- one job ------------------------------------------------------------------------
    async def job_page(self, request: Request) -> Response:
        """One row: columns, payload, last_error, and why it is runnable or not."""
        job_id = int(request.path_params["job_id"])
        handlers = self.settings.handlers
        try:
            detail = await self.call(request, lambda j: j.show(job_id, handlers=handlers))
        except JobNotFound as exc:
            return self.error(request, 404, str(exc))
        except DjmwError as exc:
            return self.error(request, 503, str(exc))
        payload = detail.row.decoding.payload
        return self.render(
            request,
            "job.html",
            detail=detail,
            row=detail.row,
            job=detail.row.job,
            payload=pretty(payload) if payload is not None else None,
            notice=_notice(request.query_params),
        )

    async def job_action(self, request: Request) -> Response:
        """POST retry or delete of one row."""
        job_id = int(request.path_params["job_id"])
        action = request.path_params["action"]
        if action not in ("retry", "delete"):
            return self.error(request, 404, "no such action")
        form = await self.checked_form(request)
        if isinstance(form, Response):
            return form
        try:
            change: Change = await self.call(
                request,
                lambda j: j.retry([job_id]) if action == "retry" else j.delete([job_id]),
            )
        except JobNotFound as exc:
            return self.error(request, 404, str(exc))
        except DjmwError as exc:
            return self.error(request, 503, str(exc))
        self.summaries.invalidate()
        self.counts.invalidate()
        done = {"done": action, "n": change.count, "held": len(change.held)}
        base = _base(request)
        if form.get("back") == "job" and (action == "retry" or change.count == 0):
            return _redirect(f"{base}/jobs/{job_id}?{urlencode(done)}")
        back = _clean_back(form.get("back", ""))
        return _redirect(f"{base}/jobs?{urlencode({**back, **done})}")

    # -- bulk -----------------------------------------------------------------------------
    async def bulk_confirm(self, request: Request) -> Response:
        """The confirmation of a bulk action: what, on which filter, and how many rows.

        The exact count can scan the whole table; after ``BULK_COUNT_WAIT`` the page
        answers with "counting" and its live part (``bulk_fragment``) brings the count
        and the button.
        """
        asked = self._bulk_request(request)
        if isinstance(asked, Response):
            return asked
        values = await run_in_threadpool(self._bulk_values, *asked, BULK_COUNT_WAIT)
        return self.render(request, "confirm.html", **values)

    async def bulk_fragment(self, request: Request) -> Response:
        """The live part of a bulk confirmation: "counting", or the count and the button."""
        asked = self._bulk_request(request)
        if isinstance(asked, Response):
            return asked
        values = await run_in_threadpool(self._bulk_values, *asked, BULK_FRAGMENT_WAIT)
        response = self.render(request, "_bulk_live.html", **values)
        if not values["counting"]:
            response.headers["X-Djmw-Refresh"] = "stop"  # djmw.js stops asking
        return response

    def _bulk_request(self, request: Request) -> tuple[str, JobFilter, dict[str, str]] | Response:
        if self.settings.read_only:
            return self.error(request, 403, "read-only dashboard: no actions")
        params = request.query_params
        action = params.get("action")
        if action not in ("retry", "delete"):
            return self.error(request, 400, "action must be retry or delete")
        try:
            jobs_filter, filters = _filter(params)
        except (BadRequest, ConfigurationError) as exc:
            return self.error(request, 400, str(exc))
        if not _bulk_allowed(filters):
            return self.error(request, 400, "a bulk action needs a state or a filter")
        return action, jobs_filter, filters

    def _bulk_values(
        self, action: str, jobs_filter: JobFilter, filters: dict[str, str], wait: float
    ) -> dict[str, Any]:
        shown = {k: v for k, v in filters.items() if v}
        snapshot = self.counts.get(
            tuple(sorted(shown.items())),
            lambda j: j.count(jobs_filter, guarded=True),
            wait=wait,
        )
        return {
            "action": action,
            "filters": filters,
            "counting": snapshot is None,
            "count": snapshot.value if snapshot is not None else None,
            "count_error": snapshot.error if snapshot is not None else None,
            "back": urlencode(shown),
            "fragment": urlencode({"action": action, **shown}),
        }

    async def bulk_action(self, request: Request) -> Response:
        """POST a confirmed bulk retry or delete."""
        form = await self.checked_form(request)
        if isinstance(form, Response):
            return form
        action = form.get("action")
        if action not in ("retry", "delete"):
            return self.error(request, 400, "action must be retry or delete")
        try:
            jobs_filter, filters = _filter(form)
        except (BadRequest, ConfigurationError) as exc:
            return self.error(request, 400, str(exc))
        if not _bulk_allowed(filters):
            return self.error(request, 400, "a bulk action needs a state or a filter")
        try:
            change: Change = await self.call(
                request,
                lambda j: j.retry(jobs_filter) if action == "retry" else j.delete(jobs_filter),
            )
        except DjmwError as exc:
            return self.error(request, 503, str(exc))
        self.summaries.invalidate()
        self.counts.invalidate()
        back = {k: v for k, v in filters.items() if v}
        done = {"done": action, "n": change.count, "held": 0}
        return _redirect(f"{_base(request)}/jobs?{urlencode({**back, **done})}")

    async def checked_form(self, request: Request) -> dict[str, str] | Response:
        """The POST's form fields, or a 403 answer (read-only; no form, a missing or bad
        CSRF token, another origin); nothing is read from the database before."""
        if self.settings.read_only:
            return self.error(request, 403, "read-only dashboard: no actions")
        form = await _form(request) or {}
        if not self.csrf.valid(request.scope, form.get(CSRF_FIELD)):
            return self.error(
                request,
                403,
                "refused: the form's CSRF token is missing or wrong (reload the page and try again)",
            )
        return form

    # -- failures -----------------------------------------------------------------------
    async def failures(self, request: Request) -> Response:
        """Failed and retrying rows grouped by name, error class and message."""
        params = request.query_params
        try:
            jobs_filter, filters = _filter(params, state=False)
        except (BadRequest, ConfigurationError) as exc:
            return self.error(request, 400, str(exc))
        newest = self.settings.failures_newest

        def compute(jobs: Jobs) -> Any:
            return jobs.failure_summary(jobs_filter, newest=newest)

        key = ("failures", tuple(sorted(filters.items())))
        max_age = max(self.settings.refresh, 30.0)
        snapshot = await run_in_threadpool(
            lambda: self.summaries.get(
                key, compute, max_age=max_age, wait=self.settings.summary_wait
            )
        )
        return self.render(
            request,
            "failures.html",
            snapshot=snapshot,
            summary=snapshot.value if snapshot is not None else None,
            filters=filters,
            glob=_glob_escape,
            newest=newest,
        )

    # -- login ----------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        """The token login form (GET) and its check (POST), which sets the session cookie."""
        token = self.settings.token
        if token is None:
            return self.error(request, 404, "no token login on this dashboard")
        if request.method == "GET":
            return self.render(request, "login.html", failed=False, public=True)
        form = await _form(request)
        if form is None or not same_origin(request.scope):
            return self.error(request, 400, "expected the login form")
        given = form.get("token", "")
        probe = {"type": "http", "headers": [(b"authorization", f"Bearer {given}".encode())]}
        if not self.asgi.allowed(probe):
            return self.render(request, "login.html", status=401, failed=True, public=True)
        response = _redirect(f"{_base(request)}/")
        response.set_cookie(
            AUTH_COOKIE,
            session_value(token),
            httponly=True,
            samesite="strict",
            path=cookie_path(request.scope),
        )
        return response

    async def login_required(self, scope: Any, receive: Any, send: Any) -> None:
        """The answer to a request without valid credentials (401)."""
        request = Request(scope, receive)
        if self.settings.token is not None:
            response: Response = self.render(
                request, "login.html", status=401, failed=False, public=True
            )
        else:
            response = self.render(
                request,
                "error.html",
                status=401,
                code=401,
                message="authentication required",
                public=True,
            )
        if self.settings.user is not None:
            response.headers["WWW-Authenticate"] = 'Basic realm="djmw", charset="UTF-8"'
        await response(scope, receive, send)


# -- helpers ------------------------------------------------------------------------------
def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _redacted(database: str | DatabaseUrl | None) -> str:
    """The database URL as pages show it: never the password."""
    if isinstance(database, DatabaseUrl):
        return database.redacted
    try:
        return parse_url(database).redacted
    except ConfigurationError:
        return "(database)"


def _query(values: Mapping[str, object], **changes: object) -> str:
    """``values`` with ``changes`` as a query string (empty values dropped)."""
    merged = {**values, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


def _int(value: str | None, what: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        msg = f"{what} must be a row id"
        raise BadRequest(msg) from None


def _filter(params: Mapping[str, str], *, state: bool = True) -> tuple[JobFilter, dict[str, str]]:
    """The JobFilter of a request's parameters, and the parameters it used."""
    filters = {key: (params.get(key) or "").strip() for key in FILTER_KEYS}
    if not state:
        filters["state"] = ""
    chosen = filters["state"] or "all"
    if chosen not in (*STATES, "all"):
        msg = f"state must be one of {', '.join((*STATES, 'all'))}"
        raise BadRequest(msg)
    queues: tuple[str | None, ...] | None = None
    if filters["queue_null"]:
        filters["queue_null"] = "1"
        queues = (None,)
    elif filters["queue"]:
        queues = (filters["queue"],)
    jobs_filter = JobFilter(
        state=cast(Any, chosen),
        queues=queues,
        name=filters["name"] or None,
        error=filters["error"] or None,
    )
    return jobs_filter, filters


def _bulk_allowed(filters: Mapping[str, str]) -> bool:
    return any(filters.get(key) for key in ("queue", "queue_null", "name", "error")) or filters.get(
        "state", ""
    ) not in ("", "all")


def _clean_back(back: str) -> dict[str, str]:
    """The list filters of a return link (other keys dropped: no open redirect)."""
    pairs = parse_qsl(back, keep_blank_values=False)
    return {key: value for key, value in pairs if key in (*FILTER_KEYS, "after")}


def _notice(params: Mapping[str, str]) -> str | None:
    """The sentence after an action, from the numbers the redirect carries."""
    action = params.get("done")
    if action not in ("retry", "delete"):
        return None
    try:
        count = int(params.get("n", "0"))
        held = int(params.get("held", "0"))
    except ValueError:
        return None
    past = "Retried" if action == "retry" else "Deleted"
    sentence = f"{past} {count} row{'' if count == 1 else 's'}."
    if held:
        sentence += f" Left alone {held} row{'' if held == 1 else 's'} held by a live worker."
    elif count == 0:
        sentence += " Nothing changed: the row was held by a live worker or changed meanwhile."
    return sentence


def _glob_escape(name: str) -> str:
    """``name`` as a glob matching only itself (``*``, ``?`` and ``[`` bracketed)."""
    return re.sub(r"([*?\[])", r"[\1]", name)


async def _form(request: Request) -> dict[str, str] | None:
    """An urlencoded form body (last value of a key wins), or None."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return dict(pairs)
