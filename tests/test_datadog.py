"""The datadog backend as a library: where it posts, what it posts, how it retries, what it
says when it gives up, and how the outbox drains through it.

Every request is answered by respx (the autouse ``respx_router`` of conftest; routes added
with the global ``respx.post`` would go to another router and never match). Time is fake:
``sleep`` records its argument and moves a fake monotonic clock on by it, so each test is
instant and the retry budget is exact.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import datadog_api_client
import httpx
import pytest
from datadog_api_client.model_utils import validate_and_convert_types
from datadog_api_client.v2.model.dora_deployment_request import DORADeploymentRequest
from datadog_api_client.v2.model.dora_deployment_request_attributes import (
    DORADeploymentRequestAttributes,
)
from datadog_api_client.v2.model.dora_failure_request import DORAFailureRequest
from datadog_api_client.v2.model.dora_failure_request_attributes import (
    DORAFailureRequestAttributes,
)
from datadog_api_client.v2.model.dora_git_info import DORAGitInfo

import dora
from conftest import FIXED_NOW, FakeTime, rows
from dora.backends import datadog, outbox
from dora.backends.datadog import (
    SITES,
    DatadogBackend,
    DeliveryError,
    Endpoint,
    RetryPolicy,
    endpoint,
)
from dora.errors import UsageError
from dora.events import Deployment, Event, Incident, build
from dora.store import Store, open_store

pytestmark = pytest.mark.usefixtures("frozen_now")

API = "https://api.datadoghq.com"
DEPLOYMENT_URL = f"{API}/api/v2/dora/deployment"
FAILURE_URL = f"{API}/api/v2/dora/failure"
KEY = "dd0123456789abcdef0123456789abcd"  # the shape of a real Datadog API key
SHA = "0123456789abcdef0123456789abcdef01234567"
REPO = "https://github.com/acme/api"
VALID_SITES = (
    "datadoghq.com, us3.datadoghq.com, us5.datadoghq.com, datadoghq.eu, "
    "ap1.datadoghq.com, ap2.datadoghq.com, uk1.datadoghq.com"
)


# --- events -------------------------------------------------------------------------------


def ago(minutes: int) -> Any:
    return FIXED_NOW - timedelta(minutes=minutes)


def deployment(**fields: Any) -> Deployment:
    return build(
        Deployment, {"service": "api", "started_at": ago(30), "finished_at": ago(25), **fields}
    )


def full_deployment() -> Deployment:
    return deployment(
        id="deploy-0001-abcdef",
        team="payments",
        env="prod",
        version="1.2.3",
        git={"repository_url": REPO, "commit_sha": SHA},
        custom_tags=["region:eu", "tier:1"],
    )


def incident(**fields: Any) -> Incident:
    return build(Incident, {"services": ["api"], "started_at": ago(60), **fields})


def incident_with_services() -> Incident:
    return incident(
        id="incident-0001-abcdef",
        services=["api", "web"],
        name="Checkout down",
        severity="SEV-1",
        env="prod",
        version="1.2.3",
        git={"repository_url": REPO, "commit_sha": SHA},
        custom_tags=["region:eu"],
    )


def incident_with_only_a_team() -> Incident:
    return build(Incident, {"team": "sre", "started_at": ago(60)})


def resolved_incident() -> Incident:
    return incident(id="incident-0002-abcdef", team="sre", finished_at=ago(10))


# --- fake time and the backend ------------------------------------------------------------


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backoff is its full ceiling, so the sequence of waits is exact."""
    monkeypatch.setattr(datadog, "random", types.SimpleNamespace(uniform=lambda low, high: high))


MakeBackend = Callable[..., DatadogBackend]


@pytest.fixture
def make_backend(fake_time: FakeTime) -> Iterator[MakeBackend]:
    made: list[DatadogBackend] = []

    def make(
        budget: float = 30.0, *, where: Endpoint | None = None, **policy: float
    ) -> DatadogBackend:
        backend = DatadogBackend(
            where or Endpoint(API, KEY),
            RetryPolicy(budget=budget, **policy),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        )
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.__exit__(None, None, None)


def answers(*responses: int | httpx.Response | type[Exception]) -> list[Any]:
    """respx side effects from statuses, responses and exception classes."""
    return [httpx.Response(r) if isinstance(r, int) else r for r in responses]


def always(status: int, **kwargs: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, **kwargs)


def posted_id(request: httpx.Request) -> str:
    return json.loads(request.content)["data"]["attributes"]["id"]


# --- endpoint(): where to post and with which key -----------------------------------------


def test_dora_api_url_wins_over_the_site_and_loses_its_trailing_slash():
    env = {
        "DORA_API_URL": "http://127.0.0.1:8126/",
        "DATADOG_SITE": "datadoghq.con",  # not even checked
        "DATADOG_API_KEY": KEY,
    }

    assert endpoint(env) == Endpoint("http://127.0.0.1:8126", KEY)


def test_dora_api_url_may_be_https_with_a_path():
    env = {"DORA_API_URL": "https://proxy.example.com/datadog//", "DD_API_KEY": KEY}

    assert endpoint(env).base_url == "https://proxy.example.com/datadog"


@pytest.mark.parametrize(
    "value",
    ["api.datadoghq.com", "ftp://example.com", "localhost:8126", "http://", "http://h:99999"],
)
def test_a_dora_api_url_that_is_not_http_is_a_usage_error(value):
    with pytest.raises(UsageError) as raised:
        endpoint({"DORA_API_URL": value, "DATADOG_API_KEY": KEY})

    assert raised.value.message == (
        f"DORA_API_URL: '{value}' is not an http:// or https:// URL with a host"
    )
    assert raised.value.exit_code == 2


@pytest.mark.parametrize("value", ["http://127.0.0.1:8126?x=1", "http://h.example.com/#f"])
def test_a_dora_api_url_with_a_query_is_a_usage_error(value):
    with pytest.raises(UsageError, match="must not have a query, fragment or space"):
        endpoint({"DORA_API_URL": value, "DATADOG_API_KEY": KEY})


def test_push_gives_each_event_its_own_budget(respx_router, make_backend, fake_time, tmp_path):
    from dora.backends import outbox
    from dora.store import open_store

    def slow_accept(request):
        fake_time.now += 20  # each answer takes 20 s of a 30 s budget
        return httpx.Response(202)

    respx_router.post(DEPLOYMENT_URL).mock(side_effect=slow_accept)
    with open_store(tmp_path / "d.db") as store:
        for _ in range(3):
            store.save(deployment(), queue=True)
        report = outbox.push(store, make_backend())

    assert (len(report.delivered), report.remaining) == (3, 0)


def test_without_a_site_the_api_is_datadoghq_com():
    assert endpoint({"DATADOG_API_KEY": KEY}) == Endpoint("https://api.datadoghq.com", KEY)


@pytest.mark.parametrize(
    ("env", "base_url"),
    [
        ({"DATADOG_SITE": "datadoghq.eu"}, "https://api.datadoghq.eu"),
        ({"DD_SITE": "us5.datadoghq.com"}, "https://api.us5.datadoghq.com"),
        (
            {"DATADOG_SITE": "datadoghq.eu", "DD_SITE": "us5.datadoghq.com"},
            "https://api.datadoghq.eu",
        ),
        ({"DATADOG_SITE": " ", "DD_SITE": "us5.datadoghq.com"}, "https://api.us5.datadoghq.com"),
    ],
    ids=["DATADOG_SITE", "DD_SITE", "DATADOG_SITE-first", "blank-DATADOG_SITE-is-unset"],
)
def test_the_site_comes_from_datadog_site_then_dd_site(env, base_url):
    assert endpoint({**env, "DATADOG_API_KEY": KEY}).base_url == base_url


@pytest.mark.parametrize("site", SITES)
def test_every_known_site_is_accepted(site):
    assert endpoint({"DATADOG_SITE": site, "DATADOG_API_KEY": KEY}).base_url == (
        f"https://api.{site}"
    )


def test_the_known_sites_are_the_ones_datadog_offers_dora_metrics_on():
    assert ", ".join(SITES) == VALID_SITES


@pytest.mark.parametrize("value", ["DATADOGHQ.EU", " datadoghq.eu ", "https://app.datadoghq.eu/"])
def test_a_site_is_read_as_a_person_would_write_it(value):
    assert endpoint({"DD_SITE": value, "DD_API_KEY": KEY}).base_url == "https://api.datadoghq.eu"


@pytest.mark.parametrize("variable", ["DATADOG_SITE", "DD_SITE"])
def test_a_mistyped_site_is_a_usage_error_naming_the_variable_and_the_valid_sites(variable):
    with pytest.raises(UsageError) as raised:
        endpoint({variable: "datadoghq.con", "DATADOG_API_KEY": KEY})

    assert raised.value.message == (
        f"{variable}: 'datadoghq.con' is not a Datadog site; use one of {VALID_SITES}"
    )
    assert raised.value.exit_code == 2


@pytest.mark.parametrize("site", ["ddog-gov.com", "us2.ddog-gov.com"])
def test_a_government_site_says_dora_metrics_is_not_offered_there(site):
    with pytest.raises(UsageError) as raised:
        endpoint({"DATADOG_SITE": site, "DATADOG_API_KEY": KEY})

    assert raised.value.message == (
        f"DATADOG_SITE: Datadog does not offer DORA Metrics on {site} (Datadog for Government)"
    )


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"DATADOG_API_KEY": "from-datadog"}, "from-datadog"),
        ({"DD_API_KEY": "from-dd"}, "from-dd"),
        ({"DATADOG_API_KEY": "from-datadog", "DD_API_KEY": "from-dd"}, "from-datadog"),
        ({"DATADOG_API_KEY": "  ", "DD_API_KEY": "from-dd"}, "from-dd"),
        ({"DATADOG_API_KEY": " padded \n"}, "padded"),
    ],
    ids=["DATADOG_API_KEY", "DD_API_KEY", "DATADOG_API_KEY-first", "blank-is-unset", "trimmed"],
)
def test_the_key_comes_from_datadog_api_key_then_dd_api_key(env, key):
    assert endpoint(env).api_key == key


@pytest.mark.parametrize(
    "env",
    [{}, {"DATADOG_API_KEY": "", "DD_API_KEY": " "}, {"DORA_API_URL": "http://127.0.0.1:8126"}],
    ids=["unset", "blank", "with-DORA_API_URL"],
)
def test_a_missing_key_is_a_usage_error_naming_both_variables(env):
    with pytest.raises(UsageError) as raised:
        endpoint(env, need_key=True)

    assert raised.value.message == (
        "no Datadog API key is set (DD_API_KEY or DATADOG_API_KEY): "
        "the datadog backend needs one to send"
    )
    assert raised.value.exit_code == 2


def test_no_key_is_needed_when_none_is_asked_for():
    assert endpoint({}, need_key=False) == Endpoint("https://api.datadoghq.com", None)
    assert endpoint({"DORA_API_URL": "http://localhost:1"}, need_key=False).api_key is None


def test_an_endpoint_never_shows_its_key():
    where = endpoint({"DATADOG_API_KEY": KEY})

    assert where.api_key == KEY
    assert KEY not in repr(where)
    assert KEY not in str(where)
    assert KEY not in f"{where!r} {[where]} { ({'where': where}) }"


# --- send(): one case per answer ----------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_a_2xx_is_returned_after_one_request(respx_router, make_backend, fake_time, status):
    route = respx_router.post(DEPLOYMENT_URL).mock(return_value=httpx.Response(status))

    assert make_backend().send(deployment()) == status
    assert len(route.calls) == 1
    assert fake_time.sleeps == []


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            400,
            {"errors": ["Invalid attribute 'service'"]},
            "Datadog rejected the deployment (400 Bad Request: Invalid attribute 'service'); "
            "fix the field it names",
        ),
        (
            400,
            {"errors": [{"title": "Bad Request", "detail": "started_at: must be an integer"}]},
            "Datadog rejected the deployment (400 Bad Request: started_at: must be an integer); "
            "fix the field it names",
        ),
        (
            401,
            {"errors": ["Unauthorized"]},
            "Datadog refused the API key (401 Unauthorized: Unauthorized); check "
            "DATADOG_API_KEY or DD_API_KEY, and that DATADOG_SITE is your account's site",
        ),
        (
            403,
            {"errors": ["Forbidden"]},
            "Datadog refused the API key (403 Forbidden: Forbidden); check "
            "DATADOG_API_KEY or DD_API_KEY, and that DATADOG_SITE is your account's site",
        ),
        (
            404,
            {"errors": ["Not found"]},
            f"no DORA API at {DEPLOYMENT_URL} (404 Not Found: Not found); "
            "check DORA_API_URL or DATADOG_SITE",
        ),
        (
            413,
            {"errors": ["Payload too large"]},
            "Datadog found the deployment too large (413 Request Entity Too Large: "
            "Payload too large); shorten its tags",
        ),
        (
            422,
            {"errors": ["Unprocessable"]},
            "Datadog rejected the deployment (422 Unprocessable Entity: Unprocessable); "
            "fix the field it names",
        ),
    ],
    ids=["400", "400-json-api-error", "401", "403", "404", "413", "422"],
)
def test_a_4xx_is_final_at_once_and_says_what_to_fix(
    respx_router, make_backend, fake_time, status, body, message
):
    route = respx_router.post(DEPLOYMENT_URL).mock(side_effect=always(status, json=body))

    with pytest.raises(DeliveryError) as raised:
        make_backend().send(deployment())

    assert len(route.calls) == 1
    assert fake_time.sleeps == []
    assert raised.value.message == message
    assert (raised.value.retryable, raised.value.status) == (False, status)
    assert raised.value.exit_code == 1


def test_a_400_without_a_json_body_shows_the_text_on_one_line(respx_router, make_backend):
    respx_router.post(DEPLOYMENT_URL).mock(
        return_value=httpx.Response(400, text="<html>\n  bad\n  request\n</html>")
    )

    with pytest.raises(DeliveryError) as raised:
        make_backend().send(deployment())

    assert raised.value.message == (
        "Datadog rejected the deployment (400 Bad Request: <html> bad request </html>); "
        "fix the field it names"
    )


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_a_transient_status_is_retried_after_a_backoff(
    respx_router, make_backend, fake_time, status
):
    route = respx_router.post(DEPLOYMENT_URL).mock(side_effect=answers(status, 202))

    assert make_backend().send(deployment()) == 202
    assert len(route.calls) == 2
    [wait] = fake_time.sleeps
    assert 0 <= wait <= RetryPolicy().base_delay


@pytest.mark.parametrize("status", [507, 520, 522, 524])
def test_every_5xx_is_retried_not_reported_as_a_bad_field(
    respx_router, make_backend, fake_time, status
):
    """The issue and the module say 5xx is retried; proxies and CDNs in front of an API
    answer 507 and 520-524 for outages that pass."""
    route = respx_router.post(DEPLOYMENT_URL).mock(side_effect=answers(status, 202))

    try:
        result = make_backend().send(deployment())
    except DeliveryError as exc:
        pytest.fail(f"{status} was final after {len(route.calls)} attempt(s): {exc.message}")

    assert result == 202
    assert len(route.calls) == 2


def test_a_429_waits_exactly_as_long_as_retry_after_says(respx_router, make_backend, fake_time):
    route = respx_router.post(DEPLOYMENT_URL).mock(
        side_effect=answers(httpx.Response(429, headers={"Retry-After": "3"}), 202)
    )

    assert make_backend(budget=10).send(deployment()) == 202
    assert len(route.calls) == 2
    assert fake_time.sleeps == [3.0]


def test_a_retry_after_on_a_503_is_honoured_too(respx_router, make_backend, fake_time):
    respx_router.post(DEPLOYMENT_URL).mock(
        side_effect=answers(httpx.Response(503, headers={"Retry-After": "1.5"}), 202)
    )

    assert make_backend().send(deployment()) == 202
    assert fake_time.sleeps == [1.5]


def test_a_retry_after_date_in_the_past_waits_only_a_backoff(respx_router, make_backend, fake_time):
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    route = respx_router.post(DEPLOYMENT_URL).mock(
        side_effect=answers(httpx.Response(429, headers={"Retry-After": past}), 202)
    )

    assert make_backend().send(deployment()) == 202
    assert len(route.calls) == 2
    [slept] = fake_time.sleeps
    assert 0.0 <= slept <= 0.5  # the first backoff ceiling: "now" is not a reason to hammer


@pytest.mark.parametrize("retry_after", [None, "soon"], ids=["absent", "unreadable"])
def test_a_429_without_a_usable_retry_after_backs_off_within_the_first_ceiling(
    respx_router, make_backend, fake_time, retry_after
):
    headers = {"Retry-After": retry_after} if retry_after else {}
    route = respx_router.post(DEPLOYMENT_URL).mock(
        side_effect=answers(httpx.Response(429, headers=headers), 202)
    )

    assert make_backend().send(deployment()) == 202
    assert len(route.calls) == 2
    [wait] = fake_time.sleeps
    assert 0 <= wait <= RetryPolicy().base_delay


def test_backoff_doubles_up_to_the_ceiling(respx_router, make_backend, fake_time, no_jitter):
    route = respx_router.post(DEPLOYMENT_URL).mock(side_effect=answers(*[503] * 7, 202))

    assert make_backend(budget=60).send(deployment()) == 202
    assert len(route.calls) == 8
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_503_forever_gives_up_within_the_budget_with_the_attempt_count(
    respx_router, make_backend, fake_time, no_jitter
):
    route = respx_router.post(DEPLOYMENT_URL).mock(
        side_effect=always(503, json={"errors": ["Internal error, try again"]})
    )

    with pytest.raises(DeliveryError) as raised:
        make_backend(budget=10).send(deployment())

    # waits 0.5 + 1 + 2 + 4 = 7.5 s; the next (8 s) would end past the budget
    assert len(route.calls) == 5
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert raised.value.message == (
        "Datadog did not accept the deployment after 5 attempts in 7.5s: "
        "503 Service Unavailable: Internal error, try again"
    )
    assert (raised.value.retryable, raised.value.status) == (True, 503)


def test_a_sleep_that_overshoots_the_budget_still_reports_the_last_answer(
    respx_router, make_backend, fake_time, no_jitter
):
    # a loaded machine wakes late: the second try would start after the deadline
    def late(seconds: float) -> None:
        fake_time.sleeps.append(seconds)
        fake_time.now += seconds + 1.0

    respx_router.post(DEPLOYMENT_URL).mock(
        side_effect=always(408, json={"errors": ["Request timeout, try again"]})
    )
    backend = make_backend(budget=1)
    backend._http._sleep = late

    with pytest.raises(DeliveryError) as raised:
        backend.send(deployment())

    assert fake_time.sleeps == [0.5]
    assert raised.value.message == (
        "Datadog did not accept the deployment after 1 attempt in 1.5s: "
        "408 Request Timeout: Request timeout, try again"
    )
    assert (raised.value.retryable, raised.value.status) == (True, 408)


@pytest.mark.parametrize("budget", [1, 5, 30])
def test_with_real_jitter_the_waits_never_exceed_the_budget(
    respx_router, make_backend, fake_time, budget
):
    route = respx_router.post(DEPLOYMENT_URL).mock(side_effect=always(503))

    with pytest.raises(DeliveryError) as raised:
        make_backend(budget=budget).send(deployment())

    assert raised.value.retryable is True
    assert sum(fake_time.sleeps) < budget
    assert all(0 <= wait <= RetryPolicy().max_delay for wait in fake_time.sleeps)
    assert len(route.calls) == len(fake_time.sleeps) + 1
    attempts = len(route.calls)
    assert f"after {attempts} attempt{'s' if attempts > 1 else ''} in " in raised.value.message


def test_a_retry_after_beyond_the_budget_gives_up_at_once(respx_router, make_backend, fake_time):
    route = respx_router.post(DEPLOYMENT_URL).mock(
        side_effect=always(429, headers={"Retry-After": "120"})
    )

    with pytest.raises(DeliveryError) as raised:
        make_backend(budget=30).send(deployment())

    assert len(route.calls) == 1
    assert fake_time.sleeps == []
    assert raised.value.message == (
        "Datadog did not accept the deployment after 1 attempt in 0.0s: 429 Too Many Requests; "
        "it asked to wait 120s, past the retry budget"
    )
    assert (raised.value.retryable, raised.value.status) == (True, 429)


def test_a_retry_after_beyond_what_is_left_of_the_budget_gives_up_without_sleeping(
    respx_router, make_backend, fake_time
):
    route = respx_router.post(DEPLOYMENT_URL).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "6"}),
            httpx.Response(429, headers={"Retry-After": "5"}),  # 6 + 5 >= 10
        ]
    )

    with pytest.raises(DeliveryError) as raised:
        make_backend(budget=10).send(deployment())

    assert len(route.calls) == 2
    assert fake_time.sleeps == [6.0]
    assert "after 2 attempts in 6.0s" in raised.value.message


def test_connection_refused_is_retried_until_the_server_answers(
    respx_router, make_backend, fake_time
):
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    route = respx_router.post(DEPLOYMENT_URL).mock(
        side_effect=[refused, refused, httpx.Response(202)]
    )

    assert make_backend().send(deployment()) == 202
    assert len(route.calls) == 3
    assert len(fake_time.sleeps) == 2


def test_connection_refused_forever_names_the_transport_error(
    respx_router, make_backend, fake_time, no_jitter
):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    route = respx_router.post(DEPLOYMENT_URL).mock(side_effect=refuse)

    with pytest.raises(DeliveryError) as raised:
        make_backend(budget=2).send(deployment())

    assert len(route.calls) == 3  # waits 0.5 s and 1 s; 2 s more would pass the budget
    assert fake_time.sleeps == [0.5, 1.0]
    assert raised.value.message == (
        f"could not reach {DEPLOYMENT_URL} after 3 attempts in 1.5s: "
        "ConnectError: [Errno 111] Connection refused"
    )
    assert (raised.value.retryable, raised.value.status) == (True, None)


def test_read_timeouts_are_retried_and_the_last_wait_is_cut_to_the_budget(
    respx_router, make_backend, fake_time, no_jitter
):
    """Each attempt stalls for its whole read timeout (the clock moves on by it)."""
    read_timeouts: list[float] = []

    def stall(request: httpx.Request) -> httpx.Response:
        timeout = request.extensions["timeout"]
        read_timeouts.append(timeout["read"])
        assert timeout["connect"] <= RetryPolicy().connect_timeout
        fake_time.now += timeout["read"]
        raise httpx.ReadTimeout("timed out", request=request)

    route = respx_router.post(DEPLOYMENT_URL).mock(side_effect=stall)

    with pytest.raises(DeliveryError) as raised:
        make_backend(budget=30).send(deployment())

    # 10 s stall, 0.5 s wait, 10 s stall, 1 s wait, then only 8.5 s are left to wait for
    assert len(route.calls) == 3
    assert read_timeouts == [10.0, 10.0, 8.5]
    assert fake_time.sleeps == [0.5, 1.0]
    assert fake_time.now - 1000.0 == 30.0
    assert raised.value.message == (
        f"could not reach {DEPLOYMENT_URL} after 3 attempts in 30.0s: timed out (ReadTimeout)"
    )
    assert raised.value.retryable is True


def test_a_read_timeout_then_an_answer_is_a_success(respx_router, make_backend, fake_time):
    route = respx_router.post(DEPLOYMENT_URL).mock(
        side_effect=[httpx.ReadTimeout("timed out"), httpx.Response(202)]
    )

    assert make_backend().send(deployment()) == 202
    assert len(route.calls) == 2


def test_one_budget_covers_every_send_of_a_backend(respx_router, make_backend, fake_time):
    """A slow answer that uses the whole budget leaves nothing for the next event."""

    def slow(request: httpx.Request) -> httpx.Response:
        fake_time.now += 10
        return httpx.Response(202)

    route = respx_router.post(DEPLOYMENT_URL).mock(side_effect=slow)
    backend = make_backend(budget=10)

    assert backend.send(deployment()) == 202
    with pytest.raises(DeliveryError) as raised:
        backend.send(deployment())

    assert len(route.calls) == 1
    assert raised.value.message == (
        f"no time left to send the deployment to {DEPLOYMENT_URL} (retry budget of 10s used up)"
    )
    assert raised.value.retryable is True


# --- what goes over the wire --------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "url"),
    [
        (full_deployment, DEPLOYMENT_URL),
        (incident_with_services, FAILURE_URL),
        (resolved_incident, FAILURE_URL),
    ],
    ids=["deployment", "incident", "resolved-incident"],
)
def test_the_request_is_the_event_s_api_body_with_key_and_user_agent(
    respx_router, make_backend, event, url
):
    event = event()
    route = respx_router.post(url).mock(return_value=httpx.Response(202))

    make_backend().send(event)

    [call] = route.calls
    request = call.request
    assert request.method == "POST"
    assert str(request.url) == url
    assert request.url.path == event.api_path
    assert request.headers["DD-API-KEY"] == KEY
    assert request.headers["User-Agent"] == f"dora/{dora.__version__}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert json.loads(request.content) == event.api_body()


def test_deployments_and_failures_go_to_their_own_paths(respx_router, make_backend):
    deployments = respx_router.post(DEPLOYMENT_URL).mock(return_value=httpx.Response(202))
    failures = respx_router.post(FAILURE_URL).mock(return_value=httpx.Response(202))
    backend = make_backend()

    backend.send(deployment())
    backend.send(incident())

    assert [c.request.url.path for c in deployments.calls] == ["/api/v2/dora/deployment"]
    assert [c.request.url.path for c in failures.calls] == ["/api/v2/dora/failure"]


def test_every_retry_sends_the_same_body(respx_router, make_backend):
    route = respx_router.post(DEPLOYMENT_URL).mock(side_effect=answers(503, 500, 202))
    event = full_deployment()

    make_backend().send(event)

    assert [json.loads(c.request.content) for c in route.calls] == [event.api_body()] * 3


def test_a_dora_api_url_with_a_path_keeps_it(respx_router, make_backend):
    where = endpoint({"DORA_API_URL": "http://127.0.0.1:8126/proxy/", "DD_API_KEY": KEY})
    route = respx_router.post("http://127.0.0.1:8126/proxy/api/v2/dora/failure").mock(
        return_value=httpx.Response(202)
    )
    backend = make_backend(where=where)
    event = incident()

    assert backend.send(event) == 202
    assert len(route.calls) == 1
    assert backend.url(event) == "http://127.0.0.1:8126/proxy/api/v2/dora/failure"


def test_without_a_key_no_key_header_is_sent(respx_router, make_backend):
    route = respx_router.post(DEPLOYMENT_URL).mock(return_value=httpx.Response(202))

    make_backend(where=Endpoint(API, None)).send(deployment())

    assert "DD-API-KEY" not in route.calls[0].request.headers


# --- the body against Datadog's published schema ------------------------------------------

SCHEMA_CASES = [
    pytest.param(full_deployment, DORADeploymentRequest, id="deployment-every-field"),
    pytest.param(deployment, DORADeploymentRequest, id="deployment-required-only"),
    pytest.param(incident_with_services, DORAFailureRequest, id="incident-services"),
    pytest.param(incident_with_only_a_team, DORAFailureRequest, id="incident-team-only"),
    pytest.param(resolved_incident, DORAFailureRequest, id="incident-resolved"),
]
ATTRIBUTES = {
    DORADeploymentRequest: DORADeploymentRequestAttributes,
    DORAFailureRequest: DORAFailureRequestAttributes,
}


@pytest.mark.parametrize(("make", "model"), SCHEMA_CASES)
def test_the_body_validates_against_datadog_s_request_model(make, model):
    body = make().api_body()

    request = validate_and_convert_types(
        body, (model,), ["body"], True, True, datadog_api_client.Configuration()
    )

    assert isinstance(request, model)


@pytest.mark.parametrize(("make", "model"), SCHEMA_CASES)
def test_the_body_holds_only_keys_datadog_knows_with_integer_timestamps(make, model):
    event = make()
    body = event.api_body()

    assert list(body) == ["data"]
    assert list(body["data"]) == ["attributes"]
    attributes = body["data"]["attributes"]
    assert set(attributes) <= set(ATTRIBUTES[model].attribute_map)
    for name in ("started_at", "finished_at"):
        if name in attributes:
            assert type(attributes[name]) is int
            assert attributes[name] > 10**18  # nanoseconds, not seconds or milliseconds
    if "git" in attributes:
        assert set(attributes["git"]) == set(DORAGitInfo.attribute_map)
    assert None not in attributes.values()
    assert [] not in attributes.values()
    assert attributes["id"] == event.id


def test_a_body_carries_exactly_the_fields_that_are_set():
    assert full_deployment().api_body() == {
        "data": {
            "attributes": {
                "id": "deploy-0001-abcdef",
                "service": "api",
                "team": "payments",
                "env": "prod",
                "version": "1.2.3",
                "started_at": 1795519800 * 10**9,  # 2026-11-24T11:30:00Z
                "finished_at": 1795520100 * 10**9,
                "git": {"repository_url": REPO, "commit_sha": SHA},
                "custom_tags": ["region:eu", "tier:1"],
            }
        }
    }


@pytest.mark.parametrize(
    "git", [{"commit_sha": SHA}, {"repository_url": REPO}], ids=["sha-only", "url-only"]
)
def test_half_known_git_is_left_out_of_the_body(git):
    body = deployment(git=git).api_body()

    assert "git" not in body["data"]["attributes"]
    validate_and_convert_types(
        body, (DORADeploymentRequest,), ["body"], True, True, datadog_api_client.Configuration()
    )


def test_the_schema_check_does_catch_a_wrong_body():
    """The reference is not vacuous: a bad type and a half git are refused."""
    body = deployment().api_body()
    body["data"]["attributes"]["started_at"] = str(body["data"]["attributes"]["started_at"])
    with pytest.raises(datadog_api_client.exceptions.ApiTypeError):
        validate_and_convert_types(
            body, (DORADeploymentRequest,), ["body"], True, True, datadog_api_client.Configuration()
        )
    half_git = deployment().api_body()
    half_git["data"]["attributes"]["git"] = {"commit_sha": SHA}
    with pytest.raises(TypeError):
        validate_and_convert_types(
            half_git,
            (DORADeploymentRequest,),
            ["body"],
            True,
            True,
            datadog_api_client.Configuration(),
        )


# --- the outbox ---------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "outbox" / "dora.db") as opened:
        yield opened


def queue(store: Store, *events: Event) -> list[Event]:
    for event in events:
        store.save(event, queue=True)
    return list(events)


def three_events() -> list[Event]:
    return [
        deployment(id="deploy-0001-oldest", started_at=ago(50), finished_at=ago(45)),
        incident(id="incident-0002-middle", started_at=ago(40)),
        deployment(id="deploy-0003-newest", started_at=ago(30), finished_at=ago(25)),
    ]


def route_both(respx_router, side_effect: Any) -> None:
    respx_router.post(DEPLOYMENT_URL).mock(side_effect=side_effect)
    respx_router.post(FAILURE_URL).mock(side_effect=side_effect)


def test_push_delivers_oldest_first_each_once_with_its_stored_body(
    respx_router, make_backend, store
):
    events = queue(store, *three_events())
    route_both(respx_router, always(202))

    report = outbox.push(store, make_backend())

    posted = [call.request for call in respx_router.calls]
    assert [posted_id(r) for r in posted] == [e.id for e in events]
    assert [r.url.path for r in posted] == [e.api_path for e in events]
    assert [json.loads(r.content) for r in posted] == [e.api_body() for e in events]
    assert [(e.id, status) for e, status in report.delivered] == [(e.id, 202) for e in events]
    assert (report.failed, report.remaining) == ([], 0)
    assert store.undelivered() == []


def test_a_second_push_sends_nothing(respx_router, make_backend, store, tmp_path):
    queue(store, *three_events())
    route_both(respx_router, always(202))
    backend = make_backend()
    outbox.push(store, backend)

    again = outbox.push(store, backend)

    assert len(respx_router.calls) == 3
    assert (again.delivered, again.failed, again.remaining) == ([], [], 0)
    assert (
        rows(tmp_path / "outbox" / "dora.db", "SELECT state, attempts, last_error FROM outbox")
        == [{"state": "delivered", "attempts": 1, "last_error": None}] * 3
    )


def test_a_rejected_event_is_marked_failed_and_the_push_goes_on(
    respx_router, make_backend, store, fake_time
):
    first, bad, last = queue(store, *three_events())

    def answer(request: httpx.Request) -> httpx.Response:
        if posted_id(request) == bad.id:
            return httpx.Response(400, json={"errors": ["Invalid attribute 'services'"]})
        return httpx.Response(202)

    route_both(respx_router, answer)

    report = outbox.push(store, make_backend())

    assert [posted_id(c.request) for c in respx_router.calls] == [first.id, bad.id, last.id]
    assert [e.id for e, _ in report.delivered] == [first.id, last.id]
    [(failed, error)] = report.failed
    assert failed.id == bad.id
    assert error.retryable is False
    assert report.remaining == 1
    message = (
        "Datadog rejected the incident (400 Bad Request: Invalid attribute 'services'); "
        "fix the field it names"
    )
    assert error.message == message
    [pending] = store.undelivered()
    assert (pending.event.id, pending.state, pending.attempts, pending.last_error) == (
        bad.id,
        "failed",
        1,
        message,
    )
    assert fake_time.sleeps == []


def test_an_unreachable_api_stops_the_push_and_the_rest_stays_pending(
    respx_router, make_backend, store, fake_time
):
    first, second, third = queue(store, *three_events())

    def answer(request: httpx.Request) -> httpx.Response:
        if posted_id(request) == first.id:
            return httpx.Response(202)
        return httpx.Response(503, json={"errors": ["Service unavailable"]})

    route_both(respx_router, answer)

    report = outbox.push(store, make_backend(budget=5))

    ids = [posted_id(c.request) for c in respx_router.calls]
    assert ids[0] == first.id
    assert set(ids[1:]) == {second.id}  # retried within the budget; the third never tried
    assert len(ids) > 2
    assert [e.id for e, _ in report.delivered] == [first.id]
    [(failed, error)] = report.failed
    assert (failed.id, error.retryable, error.status) == (second.id, True, 503)
    assert f"after {len(ids) - 1} attempts" in error.message
    assert report.remaining == 2
    assert sum(fake_time.sleeps) < 5
    assert [(p.event.id, p.state, p.attempts) for p in store.undelivered()] == [
        (second.id, "failed", 1),
        (third.id, "pending", 0),
    ]
    assert store.undelivered()[0].last_error == error.message


def test_after_recovery_a_push_delivers_the_rest_and_each_id_is_accepted_once(
    respx_router, make_backend, store
):
    events = queue(store, *three_events())
    accepted: list[str] = []
    down = {"yes": True}

    def answer(request: httpx.Request) -> httpx.Response:
        if down["yes"] and posted_id(request) != events[0].id:
            return httpx.Response(503)
        accepted.append(posted_id(request))
        return httpx.Response(202)

    route_both(respx_router, answer)
    assert outbox.push(store, make_backend(budget=3)).remaining == 2

    down["yes"] = False
    report = outbox.push(store, make_backend(budget=3))

    assert accepted == [e.id for e in events]
    assert [e.id for e, _ in report.delivered] == [e.id for e in events[1:]]
    assert report.remaining == 0
    assert store.undelivered() == []


def test_a_resolved_incident_is_posted_again_with_its_finish(respx_router, make_backend, store):
    [opened] = queue(store, incident(id="incident-0001-resolve"))
    route = respx_router.post(FAILURE_URL).mock(side_effect=always(202))
    outbox.push(store, make_backend())

    resolved = store.resolve_incident(opened.id, ago(5), queue=True)
    outbox.push(store, make_backend())

    bodies = [json.loads(c.request.content)["data"]["attributes"] for c in route.calls]
    assert [b["id"] for b in bodies] == [opened.id, opened.id]
    assert "finished_at" not in bodies[0]
    assert bodies[1] == resolved.api_body()["data"]["attributes"]
    assert bodies[1]["finished_at"] == int(ago(5).timestamp()) * 10**9


# --- the key stays secret -----------------------------------------------------------------

FAILURES = [
    pytest.param(always(400, json={"errors": ["Invalid attribute 'service'"]}), id="400"),
    pytest.param(always(403, json={"errors": ["Forbidden"]}), id="403"),
    pytest.param(always(404, text="no such route"), id="404"),
    pytest.param(always(503, json={"errors": ["Internal error"]}), id="503"),
    pytest.param(httpx.ConnectError("[Errno 111] Connection refused"), id="refused"),
    pytest.param(httpx.ReadTimeout("timed out"), id="timeout"),
]


@pytest.mark.parametrize("failure", FAILURES)
def test_the_key_is_in_no_error_and_nowhere_in_the_store(
    respx_router, make_backend, store, tmp_path, failure
):
    queue(store, *three_events())
    route_both(respx_router, failure)

    report = outbox.push(store, make_backend(budget=3))
    store.close()

    assert report.failed
    sent = [c.request.headers["DD-API-KEY"] for c in respx_router.calls]
    assert sent  # the key did go out, in the header
    assert set(sent) == {KEY}
    for _, error in report.failed:
        assert KEY not in error.message
        assert KEY not in str(error)
        assert KEY not in repr(error)
    files = list((tmp_path / "outbox").iterdir())
    assert files
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path.name


def test_a_key_echoed_by_the_server_is_kept_out_of_the_error_and_the_store(
    respx_router, make_backend, store, tmp_path
):
    """A Datadog-compatible proxy may quote the key it refused; the issue says the key
    never appears in any error message or in the store."""
    queue(store, deployment())
    route_both(respx_router, always(403, json={"errors": [f"API key '{KEY}' is not valid"]}))

    report = outbox.push(store, make_backend())
    store.close()

    [(_, error)] = report.failed
    assert KEY not in error.message
    for path in (tmp_path / "outbox").iterdir():
        assert KEY.encode() not in path.read_bytes(), path.name


def test_a_redirect_is_final_and_says_where_it_points(respx_router, make_backend):
    route = respx_router.post(DEPLOYMENT_URL).mock(
        return_value=httpx.Response(301, headers={"Location": "https://api.example.com/x"})
    )

    with pytest.raises(DeliveryError) as error:
        make_backend().send(deployment())

    assert len(route.calls) == 1
    assert error.value.retryable is False
    assert "redirects to https://api.example.com/x" in error.value.message
    assert "DORA_API_URL" in error.value.message


def test_a_zone_less_retry_after_date_is_read_as_utc(respx_router, make_backend, fake_time):
    route = respx_router.post(DEPLOYMENT_URL).mock(
        side_effect=answers(
            httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 -0000"}), 202
        )
    )

    assert make_backend().send(deployment()) == 202
    assert len(route.calls) == 2


def test_a_broken_response_body_is_a_retryable_failure_not_a_crash(
    respx_router, make_backend, fake_time
):
    route = respx_router.post(DEPLOYMENT_URL).mock(
        side_effect=[httpx.DecodingError("bad gzip"), httpx.Response(202)]
    )

    assert make_backend().send(deployment()) == 202
    assert len(route.calls) == 2


def test_a_redirect_never_shows_the_key(respx_router, make_backend):
    respx_router.post(DEPLOYMENT_URL).mock(
        return_value=httpx.Response(302, headers={"Location": f"https://x.example.com/{KEY}/y"})
    )

    with pytest.raises(DeliveryError) as error:
        make_backend().send(deployment())

    assert KEY not in error.value.message


def test_an_event_changed_while_it_was_sent_is_sent_again_in_its_new_version(
    respx_router, make_backend, tmp_path
):
    from dora.backends import outbox
    from dora.store import open_store

    path = tmp_path / "d.db"
    incident = build(
        Incident, {"id": "incident-000000000077", "services": ["api"], "started_at": ago(60)}
    )
    bodies = []

    with open_store(path) as store:
        store.save(incident, queue=True)

        def accept_and_resolve_meanwhile(request):
            bodies.append(json.loads(request.content)["data"]["attributes"])
            if len(bodies) == 1:  # another process resolves it while the first send is out
                with open_store(path) as other:
                    other.resolve_incident(incident.id, incident.started_at + timedelta(minutes=5))
            return httpx.Response(202)

        respx_router.post(FAILURE_URL).mock(side_effect=accept_and_resolve_meanwhile)
        report = outbox.push(store, make_backend())

    assert len(report.delivered) == 1
    assert "finished_at" not in bodies[0]
    assert "finished_at" in bodies[1]  # the API ends with the resolved version
    assert len(bodies) == 2
