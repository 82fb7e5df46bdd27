"""One learner run: load the node's data and the repo's model, then train until told to stop.

The learner may start before its aggregator (they are deployed concurrently), so connecting
is retried with exponential backoff for up to `connect_timeout` seconds. Training ends
when the aggregator disconnects the learner; that is exit code 0. Anything else (no data for
the tags, the repo's code failing to import or raising, the aggregator unreachable or gone)
is a `LearnerError` whose message is the reason the learner reports and prints.
"""

from __future__ import annotations

import grpc

from flops_core.errors import FlopsError
from flops_core.events import EventReporter, EventType
from flops_core.flower_client import grpc_error_detail, start_client_with_retry
from flops_core.logs import get_logger
from flops_core.repo_checker import RepoContractError, check_repo
from flops_core.user_code import UserCodeError, call_user_code, load_model_manager
from flops_learner.config import LearnerConfig
from flops_learner.learner import Learner
from flops_utils.ml_data_client import MLDataError, NoDataForTagsError
from flops_utils.ml_repo_building_blocks import configure_data_source, enable_formatted_columns

__all__ = ["LearnerError", "run_learner"]

_log = get_logger("learner")


class LearnerError(FlopsError):
    """Raised when the learner cannot take part in training; the message is the reason."""


def run_learner(config: LearnerConfig, *, reporter: EventReporter) -> int:
    """Train as the aggregator directs; return the number of rounds this learner trained.

    Raises
    ------
    LearnerError
        The reason this learner stopped before training ended.
    """
    report = check_repo(config.repo_dir)
    if not report.ok:
        return _fail(config, reporter, report.format_problems(), RepoContractError(report.problems))
    try:
        configure_data_source(config.data_server, config.data_tags)
        # The repo's code sees `dataset["column"]` as in the original FLOps (datasets 2.x)
        # from its first line on, also for datasets it loads itself.
        enable_formatted_columns()
        model_manager = load_model_manager(config.repo_dir)
        call_user_code("ModelManager.set_model_data()", model_manager.set_model_data)
    except UserCodeError as e:
        reason = _data_reason(e) or str(e)
        return _fail(config, reporter, reason, e)

    learner = Learner(model_manager)
    _log.info(
        "project=%s learner %s connecting to aggregator %s",
        config.project_id,
        config.name,
        config.aggregator,
    )
    try:
        _serve(config, learner)
    except UserCodeError as e:
        return _fail(config, reporter, str(e), e)
    except grpc.RpcError as e:
        if learner.rounds_trained == 0:
            reason = (
                f"could not reach the aggregator at {config.aggregator} within "
                f"{config.connect_timeout:g} s ({grpc_error_detail(e)})"
            )
        else:
            reason = (
                f"lost the aggregator at {config.aggregator} after "
                f"{learner.rounds_trained} rounds ({grpc_error_detail(e)})"
            )
        return _fail(config, reporter, reason, e)
    _log.info(
        "project=%s learner %s done after %s rounds",
        config.project_id,
        config.name,
        learner.rounds_trained,
    )
    return learner.rounds_trained


def _serve(config: LearnerConfig, learner: Learner) -> None:
    """Run the Flower client, retrying the connection until `connect_timeout` runs out."""

    def retrying(delay: float) -> None:
        _log.info(
            "project=%s aggregator %s not reachable yet, retrying in %.1f s",
            config.project_id,
            config.aggregator,
            delay,
        )

    start_client_with_retry(
        server_address=config.aggregator,
        client=learner.to_client(),
        connect_timeout=config.connect_timeout,
        may_retry=lambda: learner.rounds_trained == 0,
        on_retry=retrying,
    )


def _fail(config: LearnerConfig, reporter: EventReporter, reason: str, error: Exception) -> int:
    reporter.report(EventType.FAILED, reason=reason, learner=config.name)
    raise LearnerError(reason) from error


def _data_reason(error: UserCodeError) -> str | None:
    cause = error.__cause__
    if isinstance(cause, NoDataForTagsError):
        return f"no training data: {cause}"
    if isinstance(cause, MLDataError):
        return f"cannot load training data: {cause}"
    return None
