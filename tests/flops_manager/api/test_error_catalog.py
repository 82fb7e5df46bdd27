"""The API's error catalog: each FLOps error a route can raise gets its status and safe message."""

from __future__ import annotations

import pytest

from flops_core.errors import FlopsError, PermanentError
from flops_core.repos.git_checkout import RepoPolicyError
from flops_manager.api.errors import (
    ManagerNotReadyError,
    NotAuthenticatedError,
    PermissionDeniedError,
    safe_error,
)
from flops_manager.lifecycle.embedded_stack import StackError
from flops_manager.lifecycle.teardown import ServicesNotStoppedError
from flops_manager.orchestrators import OrchestratorUnavailableError
from flops_manager.services.database_reset import DatabaseResetConflictError
from flops_manager.services.mock_datasets import DatasetUnavailableError
from flops_manager.services.mock_job_records import (
    MockDataCleanupError,
    MockJobConflictError,
    MockJobNotFoundError,
)
from flops_manager.services.nodes import (
    InvalidNodeNameError,
    NodeTokenInvalidError,
    NodeTokenNotFoundError,
    NodeTokenOtherNodeError,
)
from flops_manager.services.oakestra_auth import (
    InvalidOakestraTokenError,
    OakestraUnavailableError,
    OakestraUserNotAllowedError,
)
from flops_manager.services.projects import ProjectConflictError, ProjectNotFoundError
from flops_manager.services.tokens import InvalidCustomerIdError, TokenNotFoundError


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            NotAuthenticatedError("invalid or revoked API token"),
            (401, "invalid or revoked API token"),
        ),
        (InvalidOakestraTokenError("expired"), (401, "invalid Oakestra token: expired")),
        (PermissionDeniedError("this needs an admin token"), (403, "this needs an admin token")),
        (OakestraUserNotAllowedError("no such customer"), (403, "no such customer")),
        (
            NodeTokenInvalidError(),
            (401, NodeTokenInvalidError().args[0]),
        ),
        (
            NodeTokenOtherNodeError("edge-a", "edge-b"),
            (403, "this node token belongs to node edge-a, not edge-b"),
        ),
        (NodeTokenNotFoundError(3), (404, "node token 3 not found")),
        (InvalidNodeNameError("bad node name"), (422, "bad node name")),
        (TokenNotFoundError(7), (404, "API token 7 not found")),
        (ProjectNotFoundError("p1"), (404, "project p1 not found")),
        (MockJobNotFoundError("j1"), (404, "mock-data job j1 not found")),
        (InvalidCustomerIdError("bad customer id"), (422, "bad customer id")),
        (RepoPolicyError("file:// URLs are not allowed"), (422, "file:// URLs are not allowed")),
        (
            ProjectConflictError("project p1 is already completed"),
            (409, "project p1 is already completed"),
        ),
        (DatabaseResetConflictError("2 projects run"), (409, "2 projects run")),
        (MockJobConflictError("job j1 is deleted"), (409, "job j1 is deleted")),
        (OakestraUnavailableError("the Oakestra root is down"), (503, "the Oakestra root is down")),
        (MockDataCleanupError("data server down"), (503, "data server down")),
        (DatasetUnavailableError(("body", "x"), "hub down"), (503, "hub down")),
        (ServicesNotStoppedError("1 service still runs"), (503, "1 service still runs")),
        (StackError("MLflow did not start"), (503, "MLflow did not start")),
        (
            ManagerNotReadyError("the database is not open"),
            (503, "the manager is starting or stopping; try again shortly"),
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_catalog_answers_each_error_with_its_status_and_message(
    error: Exception, expected: tuple[int, str]
) -> None:
    # Execute
    answer = safe_error(error)
    # Assert
    assert answer == expected


def test_every_retryable_flops_error_is_a_503_with_its_message() -> None:
    # Execute
    answer = safe_error(OrchestratorUnavailableError("the Docker daemon does not answer"))
    # Assert
    assert answer == (503, "the Docker daemon does not answer")


@pytest.mark.parametrize("error", [FlopsError("x"), PermanentError("x"), KeyError("x")])
def test_errors_outside_the_catalog_stay_a_generic_500(error: Exception) -> None:
    # Execute
    answer = safe_error(error)
    # Assert
    assert answer is None
