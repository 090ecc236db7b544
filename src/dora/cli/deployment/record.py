"""``dora deployment``: record that a service was deployed (the group's own action)."""

from __future__ import annotations

from typing import Annotated

import typer
from typer import _click

from dora.cli import _common as opt
from dora.cli._help import Typer
from dora.config import Settings
from dora.errors import UsageError

app = Typer(
    name="deployment",
    lazy={
        "list": "dora.cli.deployment.view:list_",
        "show": "dora.cli.deployment.view:show",
        "mark": "dora.cli.deployment.mark:mark",
        "delete": "dora.cli.delete:deployment",
    },
)


@app.callback(invoke_without_command=True)
def deployment(
    ctx: typer.Context,
    service: Annotated[
        str | None,
        typer.Option("--service", metavar="NAME", help="Service deployed (env DD_SERVICE)."),
    ] = None,
    env: opt.Env = None,
    started_at: Annotated[
        str | None,
        opt.time_option(
            "--started-at", f"When the deployment started (required): {opt.TIME_FORMS}."
        ),
    ] = None,
    finished_at: Annotated[
        str | None,
        opt.time_option(
            "--finished-at",
            f"When the deployment finished (default: now). Same forms as --started-at; "
            f"{opt.NAIVE_LOCAL}.",
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", metavar="VERSION", help="Version that was deployed."),
    ] = None,
    team: opt.Team = None,
    id: opt.EventId = None,
    git_repository_url: opt.GitRepositoryUrl = None,
    git_commit_sha: opt.GitCommitSha = None,
    skip_git: opt.SkipGit = False,
    custom_tags: opt.CustomTags = None,
    dry_run: opt.DryRun = False,
    backend: opt.Backend = None,
    hotfix_pattern: opt.HotfixPattern = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Record a deployment of a service; list, show and mark recorded ones.

    Run it as the last step of a deploy job. The git repository URL and commit SHA come
    from the flags, DD_GIT_* variables, the CI provider's variables, or git in the current
    directory, each on its own; credentials in URLs are removed. Run inside the repository,
    it also records the commits the deployment ships since the previous deployment of the
    service and env, for lead time ('dora metrics'). Prints the new event's id on stdout.

    Examples:

        dora deployment --service api --env prod --started-at "$DEPLOY_START"
        dora deployment --service api --started-at -15m --custom-tags region:eu
        dora deployment --service api --started-at 1732440600 --dry-run
    """
    if ctx.invoked_subcommand is not None:
        given = [
            name
            for name in ctx.params
            if ctx.get_parameter_source(name) not in (None, _click.core.ParameterSource.DEFAULT)
        ]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UsageError(
                f"{flag}: records a deployment; give it without "
                f"'{ctx.invoked_subcommand}', or after it if that command takes it"
            )
        return
    from dora import checks
    from dora.events import Deployment

    settings = Settings(
        {
            "db": db,
            "service": service,
            "env": env,
            "team": team,
            "backend": backend,
            "hotfix_pattern": hotfix_pattern,
        }
    )
    hotfix = checks.hotfix_pattern(settings)
    service = settings.get("service")
    if not service:
        raise UsageError("--service: required (or set DD_SERVICE)")
    if started_at is None:
        raise UsageError("--started-at: required")
    endpoint, sender = opt.prepare(settings, dry_run=dry_run)
    event, warnings = opt.build_with_git(
        Deployment,
        {
            "id": id,
            "service": service,
            "env": settings.get("env"),
            "team": settings.get("team"),
            "version": version,
            "started_at": started_at,
            "finished_at": "now" if finished_at is None else finished_at,
            "custom_tags": custom_tags,
        },
        labels=opt.setting_labels(settings, "service", "env", "team"),
        repository_url=git_repository_url,
        commit_sha=git_commit_sha,
        skip_git=skip_git,
    )
    opt.record(
        event,
        settings,
        summary=f"Recorded deployment {event.id} ({opt.describe(event.service, event.env)})",
        dry_run=dry_run,
        endpoint=endpoint,
        backend=sender,
        warnings=warnings,
        list_commits=not skip_git,
        hotfix=hotfix,
    )
