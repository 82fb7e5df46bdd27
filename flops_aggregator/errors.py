"""Why an aggregator run fails; each error's message is shown to users as the reason."""

__all__ = [
    "AggregatorError",
    "CancelledError",
    "ConfigurationError",
    "NotEnoughLearnersError",
    "RootUnreachableError",
    "RoundFailedError",
    "TrackingError",
]


class AggregatorError(Exception):
    """Base of every failure that ends an aggregator run; `exit_code` is the process's."""

    exit_code = 1


class ConfigurationError(AggregatorError):
    """Raised at start when the configuration cannot work (strategy, address, repo)."""

    exit_code = 2


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
