"""The aggregator's configuration: one validated object built at the edge (CLI) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from flops_core.vocabulary import CLUSTER_NAME_PATTERN, Hierarchy, MLFlavor

__all__ = ["CLUSTER_NAME_PATTERN", "AggregatorConfig", "Hierarchy", "MLFlavor"]


class AggregatorConfig(BaseModel):
    """Everything one aggregator run needs.

    Client counts follow Flower's meaning: training starts once `min_available_clients`
    learners are connected; each round trains on at least `min_fit_clients` and evaluates on
    at least `min_evaluate_clients`. Once training has started, a round goes ahead with fewer
    connected learners as long as `min_fit_clients` remain (a dropped learner is recorded).
    """

    project_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    repo_dir: Path
    flavor: MLFlavor = MLFlavor.SKLEARN
    rounds: int = Field(3, ge=1)
    min_available_clients: int = Field(1, ge=1)
    min_fit_clients: int = Field(1, ge=1)
    min_evaluate_clients: int = Field(1, ge=1)
    strategy: str = "FedAvg"
    strategy_params: dict[str, Any] = Field(default_factory=dict)
    address: str = "0.0.0.0:8080"
    round_timeout: float = Field(300.0, gt=0, description="Seconds one round may take.")
    connect_timeout: float = Field(
        300.0, gt=0, description="Seconds to wait for enough learners before a round."
    )
    mlflow_uri: str | None = None
    metrics_flush_seconds: int = Field(
        2,
        ge=0,
        description="MLflow receives round metrics in batches at most this many seconds apart "
        "(0: one request per round). Each request costs the tracking server about 9 ms of CPU, "
        "which would slow rounds of small models sharing its host.",
    )
    mlflow_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds MLflow may take to start the run, store and register the model or "
        "close the run (each HTTP request, and each step as a whole) before the run fails "
        "naming MLflow.",
    )
    experiment_name: str | None = None
    registered_model_name: str | None = None
    repo_url: str | None = None
    commit: str | None = None
    callback_url: str | None = None
    hierarchy: Hierarchy = Hierarchy.CLASSIC
    cluster: str | None = Field(
        None, pattern=CLUSTER_NAME_PATTERN, description="Cluster name (hierarchy cluster)."
    )
    root_address: str | None = Field(
        None,
        pattern=r"^\S+:\d{1,5}$",
        description="Root aggregator gRPC address, host:port (hierarchy cluster).",
    )

    @model_validator(mode="after")
    def _hierarchy_fits(self) -> AggregatorConfig:
        options = {"--cluster": self.cluster, "--root-address": self.root_address}
        if self.hierarchy is Hierarchy.CLUSTER:
            missing = [option for option, value in options.items() if value is None]
            if missing:
                raise ValueError(f"a cluster aggregator needs {' and '.join(missing)}")
        else:
            given = [option for option, value in options.items() if value is not None]
            if given:
                raise ValueError(
                    f"{' and '.join(given)} only apply with --hierarchy cluster, "
                    f"not {self.hierarchy.value}"
                )
        return self

    @model_validator(mode="after")
    def _client_counts_fit(self) -> AggregatorConfig:
        for field in ("min_fit_clients", "min_evaluate_clients"):
            if getattr(self, field) > self.min_available_clients:
                raise ValueError(
                    f"{field} ({getattr(self, field)}) exceeds min_available_clients "
                    f"({self.min_available_clients}): raise min_available_clients or lower it"
                )
        return self

    @property
    def experiment(self) -> str:
        """MLflow experiment of this project."""
        return self.experiment_name or f"flops-{self.project_id}"

    @property
    def model_name(self) -> str:
        """Name of the project's model in the MLflow Model Registry."""
        return self.registered_model_name or f"flops-{self.project_id}"
