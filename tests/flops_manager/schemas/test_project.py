"""Project bodies written for the original FLOps validate; bad ones name the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from flops_manager.schemas import ProjectCreate


def _body(**training: Any) -> dict[str, Any]:
    return {
        "customerID": "Admin",
        "ml_repo_url": "https://github.com/Malyuk-A/flops_ml_repo_mnist_sklearn",
        "ml_model_flavor": "sklearn",
        "training_configuration": {"data_tags": ["mnist"], **training},
    }


def test_an_original_flops_body_is_accepted() -> None:
    body = _body(training_rounds=5, min_available_clients=2, min_fit_clients=2,
                 min_evaluate_clients=2)  # fmt: skip
    body |= {
        "verbose": True,
        "use_devel_base_images": False,
        "supported_platforms": ["linux/amd64", "linux/arm64"],
        "resource_constraints": {"memory": 500, "vcpus": 1, "storage": 0},
        "post_training_steps": [],
    }
    project = ProjectCreate.model_validate(body)
    assert project.customer_id == "Admin"
    assert project.training_configuration.deployed_learners == 2
    assert project.training_configuration.strategy == "FedAvg"


@pytest.mark.parametrize(
    ("training", "field", "message"),
    [
        ({"training_rounds": 0}, "training_rounds", "greater than or equal to 1"),
        ({"strategy": "FedAverage"}, "strategy", "unknown strategy 'FedAverage'"),
        ({"data_tags": []}, "data_tags", "at least 1 item"),
        # Only the owner's own tags and `shared:` ones: no way to name another namespace.
        ({"data_tags": ["digits", "carol:digits"]}, "data_tags", "'carol:digits' must be"),
        ({"data_tags": ["shared:carol:digits"]}, "data_tags", "letters, digits"),
        ({"data_tags": ["digits,carol:digits"]}, "data_tags", "letters, digits"),
        ({"min_fit_clients": 3, "min_available_clients": 3, "learners": 2}, None, "exceeds"),
        ({"mode": "hierarchical", "training_cycles": 0}, "training_cycles", "greater than"),
    ],
)
def test_bad_training_configuration_names_the_field(
    training: dict[str, Any], field: str | None, message: str
) -> None:
    with pytest.raises(ValidationError) as error:
        ProjectCreate.model_validate(_body(**training))
    first = error.value.errors()[0]
    assert message in first["msg"]
    assert first["loc"][0] == "training_configuration"
    if field is not None:
        assert field in first["loc"]


def test_own_and_shared_data_tags_are_accepted() -> None:
    project = ProjectCreate.model_validate(_body(data_tags=["digits", "shared:mnist", "a_b-1"]))
    assert project.training_configuration.data_tags == ["digits", "shared:mnist", "a_b-1"]


def test_hierarchical_mode_is_accepted_with_cycles() -> None:
    body = _body(mode="hierarchical", training_cycles=3, learners=4)
    config = ProjectCreate.model_validate(body).training_configuration
    assert (config.mode, config.training_cycles, config.deployed_learners) == (
        "hierarchical",
        3,
        4,
    )


def test_unknown_flavor_and_platform_are_refused() -> None:
    with pytest.raises(ValidationError) as error:
        ProjectCreate.model_validate(
            _body() | {"ml_model_flavor": "xgboost", "supported_platforms": ["linux/riscv"]}
        )
    locations = {err["loc"][0] for err in error.value.errors()}
    assert locations == {"ml_model_flavor", "supported_platforms"}


def test_deploying_without_building_is_refused() -> None:
    with pytest.raises(ValidationError, match="deploy_trained_model_image needs"):
        ProjectCreate.model_validate(
            _body() | {"post_training_steps": ["deploy_trained_model_image"]}
        )


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as error:
        ProjectCreate.model_validate(_body() | {"trainig_rounds": 3})
    assert error.value.errors()[0]["loc"] == ("trainig_rounds",)


def test_learner_platforms_pick_each_learners_image_within_the_supported_ones() -> None:
    both = {"supported_platforms": ["linux/amd64", "linux/arm64"]}
    body = ProjectCreate.model_validate(
        _body(min_available_clients=3) | both | {"learner_platforms": ["linux/arm64"]}
    )

    assert body.learner_platform(0) == ["linux/arm64"]
    assert body.learner_platform(2) == ["linux/amd64", "linux/arm64"]
    with pytest.raises(ValidationError, match="linux/arm64 is not in supported_platforms"):
        ProjectCreate.model_validate(_body() | {"learner_platforms": ["linux/arm64"]})
    with pytest.raises(ValidationError, match="lists 2 platforms for 1 learners"):
        ProjectCreate.model_validate(
            _body() | both | {"learner_platforms": ["linux/arm64", "linux/amd64"]}
        )


@pytest.mark.parametrize("field", ["verbose", "use_devel_base_images"])
@pytest.mark.parametrize("not_a_boolean", [0, 1, "true", "no", None])
def test_flags_must_be_json_booleans(field: str, not_a_boolean: Any) -> None:
    # The original SLAs send true/false; 0, 1 or strings are a mistake worth a 422.
    with pytest.raises(ValidationError) as error:
        ProjectCreate.model_validate(_body() | {field: not_a_boolean})

    assert error.value.errors()[0]["loc"] == (field,)


def test_flags_accept_json_booleans() -> None:
    flags = {"verbose": True, "use_devel_base_images": False}

    project = ProjectCreate.model_validate(_body() | flags)

    assert project.verbose is True
    assert project.use_devel_base_images is False
