"""What root and cluster aggregators agree on in hierarchical FL: config keys and MLflow tags.

The root aggregator is a classic aggregator whose Flower clients are cluster aggregators. With
every fit and evaluate instruction it sends the cycle (its round, 1-based) and its MLflow run
id, so that each cluster logs its rounds at the right steps in a run nested under the root's.
"""

from __future__ import annotations

from dataclasses import dataclass

from flwr.common import Scalar

from flops_aggregator.config import AggregatorConfig, Hierarchy

__all__ = ["CYCLE_KEY", "PARENT_RUN_TAG", "ROOT_RUN_ID_KEY", "RootRoundConfig", "hierarchy_tags"]

#: Fit/evaluate config key: the root's round (a cycle of cluster rounds), 1-based.
CYCLE_KEY = "flops_cycle"
#: Fit/evaluate config key: the root's MLflow run id, "" when it has none.
ROOT_RUN_ID_KEY = "flops_root_run_id"

#: MLflow's own tag that nests a run under its parent in the UI and in searches.
PARENT_RUN_TAG = "mlflow.parentRunId"


@dataclass
class RootRoundConfig:
    """The config a root aggregator sends its cluster aggregators, as a Flower config function.

    Parameters
    ----------
    run_id : str
        The root's MLflow run id; set once the run has started ("" without MLflow).
    """

    run_id: str = ""

    def __call__(self, server_round: int) -> dict[str, Scalar]:
        """Config of root round (cycle) `server_round`."""
        return {CYCLE_KEY: server_round, ROOT_RUN_ID_KEY: self.run_id}


def hierarchy_tags(config: AggregatorConfig) -> dict[str, str]:
    """MLflow tags that place a run in a hierarchy; none for a classic aggregator."""
    if config.hierarchy is Hierarchy.ROOT:
        return {"flops.mode": "hierarchical", "flops.role": "root_aggregator"}
    if config.hierarchy is Hierarchy.CLUSTER:
        assert config.cluster is not None
        return {
            "flops.mode": "hierarchical",
            "flops.role": "cluster_aggregator",
            "flops.cluster": config.cluster,
        }
    return {}
