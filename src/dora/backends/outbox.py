"""The outbox: events are kept in the store first, then delivered, and delivery is recorded.

Whatever happens to the process or the network between the two steps, the event is in the
store and marked pending or failed, so ``dora push`` delivers it later, once, by its id.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass, field

from dora.backends.datadog import DatadogBackend, DeliveryError
from dora.events import Deliverable
from dora.store import Store


def deliver(store: Store, backend: DatadogBackend, event: Deliverable) -> int | None:
    """Send one event already in the outbox; record the outcome; return the 2xx status, or
    None when another process is sending it (two pushes never send one event twice).

    If the stored event changed while it was being sent (an incident resolved meanwhile by
    another process), the newer version is sent too, so that the API ends with the latest
    and the outbox never calls a stale send a delivery.
    """
    if not store.claim(event, backend.policy.budget + _LEASE_MARGIN):
        return None
    while True:
        try:
            status = backend.send(event)
        except DeliveryError as exc:
            store.mark_failed(event, exc.message)
            raise
        except KeyboardInterrupt:
            store.release(event)  # the next push may send it again: ids make that harmless
            raise
        current = store.get(event.kind, event.id)
        if current is None or current.api_body() == event.api_body():
            store.mark_delivered(event)
            return status
        event = current


#: How much longer than its retry budget a sender keeps its claim on an event (a process
#: killed mid-send frees the event for the next push after that).
_LEASE_MARGIN = 30.0


@dataclass
class PushReport:
    delivered: list[tuple[Deliverable, int]] = field(default_factory=list)
    failed: list[tuple[Deliverable, DeliveryError]] = field(default_factory=list)
    #: another sender held these when this push came to them, and still does or failed them
    busy: list[Deliverable] = field(default_factory=list)
    #: another sender delivered these before this push came to them
    delivered_elsewhere: list[Deliverable] = field(default_factory=list)
    #: events this push was to deliver that are still waiting, with no sender on them now
    remaining: int = 0


def push(
    store: Store,
    backend: DatadogBackend,
    *,
    only: Container[tuple[str, str]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PushReport:
    """Deliver every pending or failed event, oldest first; with ``only``, just those of
    these (kind, id) keys. ``progress(done, total)`` is called before and after each.

    An event the API rejects as it is (a 4xx) stays failed and the push goes on; when the
    API cannot be reached or keeps failing, the push stops and the rest waits in the outbox.

    A push answers for the events that were waiting when it began and that no other sender
    held when it came to them: ``remaining`` counts those still waiting at the end with no
    sender on them. Events other pushes running at once delivered, or hold, are theirs.

    Marks come after the events (``Store.undelivered``): Datadog must have a deployment
    before it can be marked, so a mark whose deployment this push could not deliver waits.
    """

    def waiting() -> list[Deliverable]:
        items = [item.event for item in store.undelivered()]
        return [e for e in items if only is None or (e.kind, e.id) in only]

    report = PushReport()
    events = waiting()
    for done, event in enumerate(events):
        if progress:
            progress(done, len(events))
        if event.kind == "mark" and any(
            e.kind == "deployment" and e.id == event.id for e, _ in report.failed
        ):
            continue
        backend.renew_budget()
        try:
            status = deliver(store, backend, event)
        except DeliveryError as exc:
            report.failed.append((event, exc))
            if exc.about_the_endpoint:
                break
            continue
        if status is None:
            report.busy.append(event)
        else:
            report.delivered.append((event, status))
        if progress:
            progress(done + 1, len(events))
    left = {(item.event.kind, item.event.id): item for item in store.undelivered()}
    others = {(event.kind, event.id) for event in report.busy}
    report.delivered_elsewhere = [e for e in report.busy if (e.kind, e.id) not in left]
    report.busy = [e for e in report.busy if (e.kind, e.id) in left]
    report.remaining = sum(
        1
        for e in events
        if (key := (e.kind, e.id)) in left and key not in others and not left[key].claimed
    )
    return report
