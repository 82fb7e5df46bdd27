"""Configuration errors name the field and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from flops_aggregator.config import AggregatorConfig, Hierarchy


def test_min_fit_above_min_available_is_rejected() -> None:
    with pytest.raises(ValidationError, match="min_fit_clients \\(4\\) exceeds min_available"):
        AggregatorConfig(
            project_id="p", repo_dir=Path("."), min_available_clients=3, min_fit_clients=4
        )


@pytest.mark.parametrize("field", ["rounds", "min_fit_clients", "round_timeout"])
def test_counts_and_timeouts_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError) as error:
        AggregatorConfig(project_id="p", repo_dir=Path("."), **{field: 0})
    assert error.value.errors()[0]["loc"] == (field,)


def test_names_default_from_the_project() -> None:
    config = AggregatorConfig(project_id="p1", repo_dir=Path("."))
    assert config.experiment == "flops-p1"
    assert config.model_name == "flops-p1"


def _cluster(**fields: object) -> AggregatorConfig:
    values: dict[str, object] = {
        "project_id": "p",
        "repo_dir": Path("."),
        "hierarchy": Hierarchy.CLUSTER,
        "cluster": "edge1",
        "root_address": "root.example:8080",
        **fields,
    }
    return AggregatorConfig.model_validate(values)


def test_classic_is_the_default_and_needs_no_hierarchy_options() -> None:
    config = AggregatorConfig(project_id="p", repo_dir=Path("."))
    assert config.hierarchy is Hierarchy.CLASSIC
    assert config.cluster is None and config.root_address is None


def test_cluster_with_name_and_root_address_is_valid() -> None:
    config = _cluster()
    assert (config.cluster, config.root_address) == ("edge1", "root.example:8080")


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ({"cluster": None}, "a cluster aggregator needs --cluster"),
        ({"root_address": None}, "a cluster aggregator needs --root-address"),
        ({"cluster": None, "root_address": None}, "needs --cluster and --root-address"),
    ],
)
def test_cluster_needs_its_name_and_root_address(missing: dict[str, object], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        _cluster(**missing)


@pytest.mark.parametrize("name", ["", "-edge", "a b", "a/b", "x" * 64, "édge"])
def test_cluster_names_are_letters_digits_and_dots_dashes_underscores(name: str) -> None:
    with pytest.raises(ValidationError) as error:
        _cluster(cluster=name)
    assert error.value.errors()[0]["loc"] == ("cluster",)


@pytest.mark.parametrize("address", ["root", "root:", ":8080 x", "root:port"])
def test_root_address_must_be_host_and_port(address: str) -> None:
    with pytest.raises(ValidationError) as error:
        _cluster(root_address=address)
    assert error.value.errors()[0]["loc"] == ("root_address",)


@pytest.mark.parametrize("hierarchy", [Hierarchy.CLASSIC, Hierarchy.ROOT])
def test_cluster_options_are_refused_outside_a_cluster(hierarchy: Hierarchy) -> None:
    with pytest.raises(ValidationError, match="--cluster only apply with --hierarchy cluster"):
        AggregatorConfig(project_id="p", repo_dir=Path("."), hierarchy=hierarchy, cluster="c1")


@pytest.mark.parametrize("name", ["cluster-1", "edge_A.2"])
def test_oakestra_style_cluster_names_are_valid(name: str) -> None:
    assert _cluster(cluster=name).cluster == name
