"""Send an alert when a job fails for good (retries used up, or a permanent error).

Use this when a failed job needs a person: post to a Slack or Mattermost incoming
webhook, a pager, or any callable; failed attempts that will be retried stay quiet.

Drop in::

    from recipes.alert_on_failure import AlertOnPermanentFailure, webhook

    chain = djmw.default_middlewares(handlers)
    chain.insert(3, AlertOnPermanentFailure(send=webhook("https://hooks.example/T0/B0/x")))
    worker = djmw.Worker(database=url, handlers=handlers, middlewares=chain)

delayed_job equivalent: a payload's ``failure`` hook that notifies someone.

Caveats: one alert per failed job, sent from the worker's thread before the row is
written (keep ``timeout`` short); a sender that raises is logged and ignored.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable

import attrs

from djmw import CallNext, Failed, Job, Outcome

logger = logging.getLogger("djmw")


def webhook(url: str, *, timeout: float = 5.0) -> Callable[[str], None]:
    """Return a sender POSTing ``{"text": message}`` as JSON to ``url`` (Slack's format)."""
    if not url.startswith(("https://", "http://")):
        msg = f"webhook URL must be http(s), got {url!r}"
        raise ValueError(msg)

    def send(message: str) -> None:
        body = json.dumps({"text": message}).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 - checked above
            pass

    return send


@attrs.frozen(kw_only=True)
class AlertOnPermanentFailure:
    """Call ``send(message)`` once when the outcome is ``Failed``.

    The message names the job, its id and queue, the attempts and the error's first
    line: ``djmw: job ReportJob (id=7, queue=reports) failed for good after 25
    attempts: TimeoutError: upstream timed out``.

    Where: inside LogOutcome, outside MarkFailed (it must see the final outcome).
    """

    send: Callable[[str], None]

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the inner chain; alert when the job failed for good."""
        outcome = call_next(job)
        if isinstance(outcome, Failed):
            error = outcome.error
            first_line = (str(error).splitlines() or [""])[0]
            message = (
                f"djmw: job {job.display_name} (id={job.id}, queue={job.queue or 'default'}) "
                f"failed for good after {outcome.attempts} attempts: "
                f"{type(error).__name__}: {first_line}"
            )
            try:
                self.send(message)
            except Exception as exc:  # an alert must not cost the job its outcome
                logger.warning("alert for job %s not sent: %s", job.id, exc)
        return outcome
