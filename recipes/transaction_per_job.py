"""One SQLAlchemy transaction per job: committed when the job succeeds, rolled back otherwise.

Use this when handlers write to the application's database through SQLAlchemy and a
failed attempt must leave nothing half-written (the retry starts from a clean state).

Drop in (``pip install sqlalchemy``)::

    from recipes.transaction_per_job import TransactionPerJob, current_session

    Session = sqlalchemy.orm.sessionmaker(engine)
    chain = djmw.default_middlewares(handlers)
    chain.insert(3, TransactionPerJob(Session))          # after LogOutcome
    worker = djmw.Worker(database=url, handlers=handlers, middlewares=chain)

    @handlers.register("InvoiceJob")
    def invoice(job):
        current_session().add(Invoice(...))                # committed only on success

delayed_job equivalent: none (Rails wraps nothing; apps call ``transaction do`` by hand).

Caveats: the job's own row is written by djmw after the chain, through djmw's connection,
not inside this transaction: a crash between the commit and that write runs the job
again (README, Guarantees), so keep handlers idempotent. Third-party import: sqlalchemy.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

import attrs
from sqlalchemy.orm import Session

from djmw import CallNext, Job, Outcome, Succeeded

_session: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "djmw_session", default=None
)


def current_session() -> Session:
    """Return the running job's session; RuntimeError outside a TransactionPerJob."""
    session = _session.get()
    if session is None:
        msg = "no job transaction is open: add TransactionPerJob to the worker's chain"
        raise RuntimeError(msg)
    return session


@attrs.frozen
class TransactionPerJob:
    """Open a session per job, commit on ``Succeeded``, roll back on anything else.

    Where: inside LogOutcome and outside MarkFailed, so that the handler's hooks run in
    the transaction and a failed attempt is rolled back before it is rescheduled.

    Args:
        session_factory: a ``sessionmaker`` (any callable returning a Session).
    """

    session_factory: Callable[[], Session]

    def __call__(self, job: Job, call_next: CallNext, /) -> Outcome:
        """Run the inner chain inside one transaction."""
        with self.session_factory() as session:
            token = _session.set(session)
            try:
                outcome = call_next(job)
            except BaseException:
                session.rollback()
                raise
            finally:
                _session.reset(token)
            if isinstance(outcome, Succeeded):
                session.commit()
            else:
                session.rollback()
            return outcome
