"""What every aggregator run shares, classic, root or cluster: repo check, MLflow run, failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flops_aggregator.config import AggregatorConfig, Hierarchy
from flops_aggregator.errors import ConfigurationError
from flops_aggregator.hierarchy import hierarchy_tags
from flops_aggregator.tracking import MlflowTracker
from flops_core.events import EventReporter, EventType
from flops_core.redact import redact_url
from flops_core.repo_checker import check_repo

__all__ = ["check_repo_requirements", "report_failure", "run_params", "run_tags", "tracker_of"]

# Settings that say nothing about the training, or may hold credentials.
_NOT_PARAMS = frozenset({"callback_url", "repo_dir", "mlflow_uri", "repo_url"})
_HIERARCHY_FIELDS = frozenset({"hierarchy", "cluster", "root_address"})


def check_repo_requirements(repo_dir: Path) -> list[str]:
    """Check the repo against the contract; return its declared requirements.

    Raises
    ------
    ConfigurationError
        The repo breaks the contract; the message lists every problem.
    """
    report = check_repo(repo_dir)
    if not report.ok:
        raise ConfigurationError(report.format_problems())
    assert report.dependencies is not None
    return list(report.dependencies.requirements)


def tracker_of(config: AggregatorConfig) -> MlflowTracker | None:
    """The tracker of the MLflow server `config` names, its run not started; None without one."""
    if not config.mlflow_uri:
        return None
    return MlflowTracker(
        tracking_uri=config.mlflow_uri,
        experiment=config.experiment,
        project_id=config.project_id,
        timeout_s=config.mlflow_timeout,
    )


def report_failure(
    reporter: EventReporter, tracker: MlflowTracker | None, reason: str, *, killed: bool = False
) -> None:
    """Report `failed` with `reason` and close the MLflow run (if any) as FAILED or KILLED."""
    reporter.report(EventType.FAILED, reason=reason)
    if tracker is not None and tracker.run_id is not None:
        tracker.set_tags({"flops.failure_reason": reason[:5000]})
        tracker.finish(succeeded=False, killed=killed)


def run_params(config: AggregatorConfig) -> dict[str, Any]:
    """The MLflow params of a run: the configuration without secrets, strategy params flat.

    A classic aggregator's params leave out the hierarchy settings, as before hierarchical FL.
    """
    exclude = set(_NOT_PARAMS)
    if config.hierarchy is Hierarchy.CLASSIC:
        exclude |= _HIERARCHY_FIELDS
    params = config.model_dump(mode="json", exclude=exclude)
    strategy_params = params.pop("strategy_params")
    params.update({f"strategy.{k}": v for k, v in strategy_params.items()})
    return params


def run_tags(config: AggregatorConfig) -> dict[str, str]:
    """The MLflow tags of a run (the tracker adds `flops.project_id`)."""
    tags = {"flops.flavor": config.flavor.value, "flops.strategy": config.strategy}
    if config.repo_url:
        tags["flops.repo_url"] = redact_url(config.repo_url)
    if config.commit:
        tags["flops.commit"] = config.commit
    tags.update(hierarchy_tags(config))
    return tags
