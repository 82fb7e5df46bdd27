"""Data-aware placement: one learner per fresh node that holds the tags, on its platform."""

from __future__ import annotations

from typing import Any

import pytest

from flops_manager.lifecycle.node_placement import NodePlacementError, place_learners
from flops_manager.schemas import ProjectCreate
from tests.flops_manager.lifecycle.registered_nodes import registered_node


def body(customer: str = "Admin", **training: Any) -> ProjectCreate:
    platforms = training.pop("supported_platforms", ["linux/amd64"])
    learner_platforms = training.pop("learner_platforms", None)
    return ProjectCreate.model_validate({
        "customerID": customer, "ml_repo_url": "https://git.example.org/me/repo.git",
        "ml_model_flavor": "sklearn", "supported_platforms": platforms,
        "learner_platforms": learner_platforms,
        "training_configuration": {"data_tags": ["digits"], **training},
    })  # fmt: skip


def test_every_fresh_node_holding_the_tags_gets_one_learner_reading_its_own_server() -> None:
    # Prepare: w3 holds other data, w0 none at all
    nodes = [
        registered_node("w2", cluster="edgeB"), registered_node("w1"),
        registered_node("w3", tags={"Admin:cifar": 10}), registered_node("w0", tags={}),
        registered_node("w4", cluster="edgeA", tags={"Admin:digits": 0, "Admin:more": 5}),
    ]  # fmt: skip

    # Execute
    plan = place_learners(nodes, body())

    # Assert
    assert [(p.index, p.node.name, p.platform) for p in plan.learners] == [
        (0, "w1", "linux/amd64"), (1, "w2", "linux/amd64"),
    ]  # fmt: skip
    assert plan.learners[0].node.data_server_url == nodes[1].data_server_url
    assert plan.event_data() == {"learners": {"learner0": "w1", "learner1": "w2"}}
    assert plan.clusters == ["edgeA", "edgeB"] and plan.learners_of("edgeB") == [1]
    assert plan.describe() == "learner0 on w1 (edgeA), learner1 on w2 (edgeB)"


def test_any_of_the_tags_counts_and_tags_are_read_in_the_owners_namespace() -> None:
    nodes = [
        registered_node("w1", tags={"acme:digits": 5}),
        registered_node("w2", tags={"acme:cifar": 5}),
        registered_node("w3", tags={"Admin:digits": 5}),  # the admin's own, not acme's
        registered_node("w4", tags={"digits": 5}),  # shared:digits
    ]
    plan = place_learners(nodes, body("acme", data_tags=["digits", "cifar"]))
    shared = place_learners(nodes, body("acme", data_tags=["shared:digits"]))
    assert [p.node.name for p in plan.learners] == ["w1", "w2"]
    assert [p.node.name for p in shared.learners] == ["w4"]


def test_learners_may_ask_for_fewer_nodes_the_first_by_name() -> None:
    nodes = [registered_node(f"w{i}") for i in (3, 1, 2)]
    plan = place_learners(nodes, body(learners=2, min_available_clients=2))
    assert [p.node.name for p in plan.learners] == ["w1", "w2"]


def test_more_learners_than_nodes_names_the_holders_and_why_the_others_were_skipped() -> None:
    # Prepare
    nodes = [
        registered_node("w1"), registered_node("w2", stale=True),
        registered_node("w3", platform="linux/arm64"), registered_node("w4", tags={}),
    ]  # fmt: skip

    # Execute
    with pytest.raises(NodePlacementError) as error:
        place_learners(nodes, body(learners=3))

    # Assert
    message = str(error.value)
    assert error.value.loc == ("training_configuration", "learners")
    assert "asks for 3 learners" in message and "3 registered nodes hold data" in message
    assert "1 can take one (w1)" in message
    assert "w2: stale (last report" in message
    assert "w3: platform linux/arm64 is not in supported_platforms (linux/amd64)" in message
    assert "w4" not in message


def test_no_node_holding_the_tags_is_an_error_on_data_tags_saying_how_to_get_data() -> None:
    with pytest.raises(NodePlacementError, match="no registered node holds data for data_tags "
                       "digits: push the data") as error:  # fmt: skip
        place_learners([registered_node("w1", tags={"Admin:cifar": 3})], body())
    assert error.value.loc == ("training_configuration", "data_tags")
    with pytest.raises(NodePlacementError, match="none can take a learner") as stale:
        place_learners([registered_node("w1", stale=True)], body())
    assert stale.value.loc == ("training_configuration", "data_tags")


def test_min_available_clients_above_the_nodes_is_an_error_naming_them() -> None:
    nodes = [registered_node("w1"), registered_node("w2")]
    with pytest.raises(NodePlacementError, match="min_available_clients is 3, but 2 registered "
                       "nodes hold data") as error:  # fmt: skip
        place_learners(nodes, body(min_available_clients=3))
    assert error.value.loc == ("training_configuration", "min_available_clients")


def test_an_arm64_node_gets_the_arm64_image_and_listed_platforms_pick_their_nodes() -> None:
    # Prepare
    nodes = [registered_node("a1", platform="linux/arm64/v8"), registered_node("x1"),
             registered_node("x2")]  # fmt: skip
    both = ["linux/amd64", "linux/arm64"]

    # Execute
    plan = place_learners(nodes, body(supported_platforms=both))
    listed = place_learners(
        nodes, body(supported_platforms=both, learners=2, min_available_clients=1,
                    learner_platforms=["linux/amd64", "linux/arm64"]),
    )  # fmt: skip

    # Assert
    assert [(p.node.name, p.platform) for p in plan.learners] == [
        ("a1", "linux/arm64"), ("x1", "linux/amd64"), ("x2", "linux/amd64"),
    ]  # fmt: skip
    assert [(p.node.name, p.platform) for p in listed.learners] == [
        ("x1", "linux/amd64"), ("a1", "linux/arm64"),
    ]  # fmt: skip


def test_a_listed_platform_no_node_has_is_an_error_on_learner_platforms() -> None:
    nodes = [registered_node("x1"), registered_node("x2")]
    with pytest.raises(NodePlacementError, match=r"learner_platforms\[0\] is linux/arm64") as e:
        place_learners(nodes, body(supported_platforms=["linux/amd64", "linux/arm64"],
                                   learner_platforms=["linux/arm64"]))  # fmt: skip
    assert e.value.loc == ("learner_platforms",)
