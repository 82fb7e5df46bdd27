"""MLflow params and tags of classic, root and cluster runs; the config a root sends."""

from __future__ import annotations

from pathlib import Path

from flops_aggregator.config import AggregatorConfig, Hierarchy
from flops_aggregator.hierarchy import CYCLE_KEY, ROOT_RUN_ID_KEY, RootRoundConfig
from flops_aggregator.runs import run_params, run_tags, tracker_of


def _config(hierarchy: Hierarchy, **fields: object) -> AggregatorConfig:
    values: dict[str, object] = {"project_id": "p", "repo_dir": Path("."), **fields}
    return AggregatorConfig.model_validate({**values, "hierarchy": hierarchy})


def test_classic_run_has_no_hierarchy_params_or_tags() -> None:
    # Execute
    config = _config(Hierarchy.CLASSIC, strategy_params={"fraction_fit": 0.5})
    params, tags = run_params(config), run_tags(config)

    # Assert: as before hierarchical FL
    assert not {"hierarchy", "cluster", "root_address"} & set(params)
    assert params["strategy.fraction_fit"] == 0.5
    assert "callback_url" not in params and "repo_dir" not in params
    assert set(tags) == {"flops.flavor", "flops.strategy"}


def test_root_run_is_tagged_as_the_root_of_a_hierarchy() -> None:
    tags = run_tags(_config(Hierarchy.ROOT))
    assert tags["flops.mode"] == "hierarchical"
    assert tags["flops.role"] == "root_aggregator"
    assert "flops.cluster" not in tags


def test_cluster_run_is_tagged_with_its_cluster() -> None:
    # Execute
    config = _config(Hierarchy.CLUSTER, cluster="edge1", root_address="root:8080")
    params, tags = run_params(config), run_tags(config)

    # Assert
    assert (params["hierarchy"], params["cluster"], params["root_address"]) == (
        "cluster",
        "edge1",
        "root:8080",
    )
    assert tags["flops.mode"] == "hierarchical"
    assert tags["flops.role"] == "cluster_aggregator"
    assert tags["flops.cluster"] == "edge1"


def test_root_sends_the_cycle_and_its_run_id_once_known() -> None:
    # Prepare
    config = RootRoundConfig()
    before = config(1)

    # Execute
    config.run_id = "abc123"

    # Assert
    assert before == {CYCLE_KEY: 1, ROOT_RUN_ID_KEY: ""}
    assert config(2) == {CYCLE_KEY: 2, ROOT_RUN_ID_KEY: "abc123"}


def test_a_tracker_only_with_a_tracking_server_and_with_the_configs_experiment_and_bound() -> None:
    # Execute
    without = tracker_of(_config(Hierarchy.CLASSIC))
    tracker = tracker_of(
        _config(Hierarchy.CLASSIC, mlflow_uri="http://127.0.0.1:9", mlflow_timeout=7.0)
    )

    # Assert
    assert without is None
    assert tracker is not None
    assert tracker.tracking_uri == "http://127.0.0.1:9"
    assert (tracker.experiment, tracker.project_id, tracker.timeout_s) == ("flops-p", "p", 7.0)
    assert tracker.run_id is None  # not started
