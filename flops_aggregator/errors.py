"""Why an aggregator run fails; each error's message is shown to users as the reason.

`ConfigurationError` is FLOps' one (from `flops_core.errors`), re-exported here; it is not an
`AggregatorError`, so code that ends a run on any failure catches `RUN_ERRORS`.
"""

from flops_core.errors import ConfigurationError, FlopsError

__all__ = [
    "RUN_ERRORS",
    "AggregatorError",
    "CancelledError",
    "ConfigurationError",
    "NotEnoughLearnersError",
    "RootUnreachableError",
    "RoundFailedError",
    "TrackingError",
]


class AggregatorError(FlopsError):
    """Base of every failure that ends an aggregator run; `exit_code` is the process's."""

    exit_code = 1


class NotEnoughLearnersError(AggregatorError):
    """Raised when too few learners are connected within the connect timeout."""


class RoundFailedError(AggregatorError):
    """Raised when a round ends with fewer results than `min_fit_clients` requires."""


class RootUnreachableError(AggregatorError):
    """Raised when a cluster aggregator cannot reach its root aggregator, or loses it."""


class TrackingError(AggregatorError):
    """Raised when the MLflow tracking server cannot be reached or refuses a request."""


class CancelledError(AggregatorError):
    """Raised in the training thread when the process is told to stop (SIGTERM, SIGINT)."""

    exit_code = 143


#: Every error that ends an aggregator run with its reason and `exit_code` (2 for a
#: configuration it cannot run).
RUN_ERRORS = (AggregatorError, ConfigurationError)
