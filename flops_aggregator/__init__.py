"""FLOps aggregator: the Flower server side of a project, with MLflow tracking.

Import from the submodules (`flops_aggregator.app`, `flops_aggregator.config`); this package
imports nothing itself so that `python -m flops_aggregator` can configure Flower before Flower
is imported.
"""

__all__: list[str] = []
