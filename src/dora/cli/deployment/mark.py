"""``dora deployment mark``: say by hand that a deployment failed, or was stable."""

from __future__ import annotations

import json
import sys
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer

from dora.cli import _common as opt
from dora.cli._runtime import status
from dora.config import Settings
from dora.errors import DoraError, NotFound, UsageError

if TYPE_CHECKING:
    from dora.backends.datadog import DatadogBackend
    from dora.events import Deliverable, Deployment, DeploymentMark
    from dora.store import Store


class RemediationType(str, Enum):
    rollback = "rollback"
    rollforward = "rollforward"


def mark(
    deployment_id: Annotated[
        str | None,
        typer.Argument(
            metavar="ID",
            help="The deployment's id, or a prefix of it that matches only one; or name it "
            "by --service, --env and --version.",
            show_default=False,
        ),
    ] = None,
    service: Annotated[
        str | None,
        typer.Option(
            "--service",
            metavar="NAME",
            help="With --version, instead of ID: the deployment's service (env DD_SERVICE).",
            show_default=False,
        ),
    ] = None,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            metavar="ENV",
            help="With --version, instead of ID: the deployment's environment (env DD_ENV).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            metavar="VERSION",
            help="Instead of ID: the deployment of --service and --env with this version "
            "that finished last; sent to Datadog by version (in preview at Datadog).",
            show_default=False,
        ),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="It failed: it needed remediation.")
    ] = False,
    stable: Annotated[
        bool,
        typer.Option("--stable", help="It did not fail, whatever the rules and incidents say."),
    ] = False,
    remediation_id: Annotated[
        str | None,
        typer.Option(
            "--remediation-id",
            metavar="ID",
            help="With --failed: the deployment that remediated it, by its id or a prefix of it.",
            show_default=False,
        ),
    ] = None,
    remediation_version: Annotated[
        str | None,
        typer.Option(
            "--remediation-version",
            metavar="VERSION",
            help="With --failed: the version that remediated it (its first deployment after "
            "this one, in the same service and env).",
            show_default=False,
        ),
    ] = None,
    remediation_type: Annotated[
        RemediationType | None,
        typer.Option(
            "--remediation-type",
            help="How it was remediated (default: rollback when the remediation deploys what "
            "was deployed before, else rollforward).",
            case_sensitive=False,
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the request that would be sent to Datadog (method, URL, JSON body); "
            "record nothing.",
        ),
    ] = False,
    backend: opt.Backend = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Mark a recorded deployment failed or stable, overriding the change-failure rules.

    A mark is kept with the deployment and wins over what the rules and linked incidents
    found, in 'dora metrics'; marking again replaces the mark. With the datadog backend it
    is sent to Datadog as well (PATCH /api/v2/dora/deployments/ID), which needs an
    application key in DD_APP_KEY besides the API key (without one, nothing is marked:
    exit 2). Prints the deployment's id.

    The deployment may be named by --service, --env and --version instead of ID: the one
    of that version that finished last, here and at Datadog, which is told by version
    (PATCH /api/v2/dora/deployments, in preview at Datadog: it may change), so that a
    deployment Datadog has under another id (sent by datadog-ci) is marked there too.

    Examples:

        dora deployment mark 01JDQ3ZK --failed --remediation-id 01JDQ4A2
        dora deployment mark 01JDQ3ZK --failed --remediation-version v1.4
        dora deployment mark 01JDQ3ZK --stable
        dora deployment mark --service api --env prod --version v1.3 --failed
    """
    from dora.failures import Mark
    from dora.store import open_store

    given = _check(failed, stable, remediation_id, remediation_version, remediation_type)
    settings = Settings({"db": db, "backend": backend, "service": service, "env": env})
    named = _named(deployment_id, settings, service, env, version)
    endpoint, sender = opt.prepare(settings, dry_run=dry_run)
    if sender is not None and not sender.has_app_key:
        from dora.backends.datadog import NO_APP_KEY

        raise UsageError(f"{NO_APP_KEY}: Datadog needs one to mark deployments")
    with open_store(settings.get("db") or "", create=False) as store:
        if named is not None:
            deployment = _of_version(store, *named)
        else:
            assert deployment_id is not None  # noqa: S101 - _named checked
            with opt.naming_fields({"id": "ID"}):
                deployment = store.find_deployment(deployment_id)
        if remediation_id is not None:
            remediation_id = _remediation(store, remediation_id, deployment.id)
        the_mark = Mark(
            failed, remediation_id, remediation_version, given, by_version=named is not None
        )
        request = store.mark_request(deployment.id, the_mark)
        if dry_run:
            from dora import checks

            base = (endpoint or checks.datadog_endpoint(settings, need_key=False)).base_url
            _print_request(request, base)
            status("Dry run: this request would be sent to Datadog; nothing was recorded.")
            return
        store.save_mark(deployment.id, the_mark, queue=sender is not None)
        status(f"Marked deployment {_summary(deployment, request)} in {store.location}")
        opt.print_then_send(
            deployment.id, None if sender is None else lambda: send(store, request, sender)
        )


def _check(
    failed: bool,
    stable: bool,
    remediation_id: str | None,
    remediation_version: str | None,
    remediation_type: RemediationType | None,
) -> str | None:
    """The flags checked together, before anything is read; the remediation type given."""
    if failed and stable:
        raise UsageError("--stable: cannot be given with --failed")
    if not failed and not stable:
        raise UsageError("--failed or --stable: one of them is required")
    named = {
        "--remediation-id": remediation_id,
        "--remediation-version": remediation_version,
        "--remediation-type": remediation_type,
    }
    if stable and (flag := next((f for f, v in named.items() if v is not None), None)):
        raise UsageError(f"{flag}: only with --failed (a stable deployment needs no remediation)")
    if remediation_id is not None and remediation_version is not None:
        raise UsageError("--remediation-version: cannot be given with --remediation-id")
    if remediation_type is not None and remediation_id is None and remediation_version is None:
        raise UsageError(
            "--remediation-type: name the remediation with --remediation-id or "
            "--remediation-version"
        )
    if remediation_version is not None:
        from dora.events import Deployment

        # the rules of a deployment's version
        opt.build_event(
            Deployment,
            {
                "service": "-",
                "started_at": "now",
                "finished_at": "now",
                "version": remediation_version,
            },
            {"version": "--remediation-version"},
        )
    return remediation_type.value if remediation_type is not None else None


def _named(
    deployment_id: str | None,
    settings: Settings,
    service: str | None,
    env: str | None,
    version: str | None,
) -> tuple[str, str, str] | None:
    """(service, env, version) when the deployment is named by them (None: by ID)."""
    if version is None:
        if service is not None or env is not None:
            flag = "--service" if service is not None else "--env"
            raise UsageError(f"{flag}: names a deployment only with --version")
        if deployment_id is None:
            raise UsageError("ID: required, or --service, --env and --version")
        return None
    if deployment_id is not None:
        raise UsageError("--version: cannot be given with ID")
    found = settings.get("service"), settings.get("env")
    for flag, value in zip(("--service", "--env"), found, strict=True):
        if not value:
            raise UsageError(f"{flag}: required with --version (Datadog marks by all three)")
    return str(found[0]), str(found[1]), version


def _of_version(store: Store, service: str, env: str, version: str) -> Deployment:
    """The deployment a mark by version marks: the latest of them, as Datadog picks it."""
    found = store.latest_of_version(service, env, version)
    if found is None:
        raise NotFound(
            f"no deployment of {service} in env {env} with version {version} in {store.location}"
        )
    return found


def _remediation(store: Store, ref: str, marked: str) -> str:
    """The id of the one deployment ``--remediation-id`` (an id or a prefix) names."""
    try:
        with opt.naming_fields({"id": "--remediation-id"}):
            found = store.find_deployment(ref).id
    except NotFound as exc:
        raise NotFound(f"--remediation-id: {exc.message}") from None
    if found == marked:
        raise UsageError("--remediation-id: a deployment cannot remediate itself")
    return found


def _summary(deployment: Deployment, request: DeploymentMark) -> str:
    """``ID failed (api, env prod), remediated by ID2 (rollback)``."""
    line = (
        f"{deployment.id} {'failed' if request.failed else 'stable'} "
        f"({opt.describe(deployment.service, deployment.env)})"
    )
    if request.remediation_id is not None:
        line += f", remediated by {request.remediation_id} ({request.remediation_type})"
    elif request.remediation_version is not None:
        line += (
            f", remediated by version {request.remediation_version} ({request.remediation_type})"
        )
    return line


def _print_request(request: DeploymentMark, base_url: str) -> None:
    """The request as one JSON document on stdout, so that ``--dry-run | jq`` works."""
    shown = {
        "method": request.api_method,
        "url": f"{base_url}{request.api_path}",
        "body": request.api_body(),
    }
    json.dump(shown, sys.stdout, indent=2)
    sys.stdout.write("\n")


def send(store: Store, request: DeploymentMark, backend: DatadogBackend) -> None:
    """Deliver a mark that is in the outbox, after its deployment if that is waiting too
    (Datadog cannot mark a deployment it has not got); a failure says what is kept."""
    kept = f"the mark is kept in {store.location}; 'dora push' will send it"
    with backend:
        if not backend.has_key:
            raise DoraError(opt.no_key("the mark is", "it", store))
        waiting = {(item.event.kind, item.event.id): item.event for item in store.undelivered()}
        todo: list[Deliverable] = [
            event for key in (("deployment", request.id),) if (event := waiting.get(key))
        ]
        todo.append(waiting.get(("mark", request.id), request))
        for event in todo:
            opt.deliver_one(store, backend, event, kept)
