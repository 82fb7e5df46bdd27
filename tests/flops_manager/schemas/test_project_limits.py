"""Project and mock-data bodies are bounded, and refs and URLs cannot be options (issue 12)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from flops_manager.schemas import ProjectCreate
from flops_manager.schemas.mock_data import MockDataRequest

PROBE_REF = "--upload-pack=touch /tmp/x/PWNED_ref;git-upload-pack"


def _body(**fields: Any) -> dict[str, Any]:
    training = fields.pop("training", {})
    return {
        "customerID": "Admin",
        "ml_repo_url": "https://git.example.org/ml/repo.git",
        "ml_model_flavor": "sklearn",
        "training_configuration": {"data_tags": ["digits"], **training},
        **fields,
    }


def _refusal(body: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ValidationError) as error:
        ProjectCreate.model_validate(body)
    first = error.value.errors()[0]
    return ".".join(map(str, first["loc"])), first["msg"]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"ml_repo_ref": PROBE_REF}, "ml_repo_ref", "it starts with '-'; allowed: a branch"),
        ({"ml_repo_ref": "main..x"}, "ml_repo_ref", "it contains '..'"),
        ({"ml_repo_ref": "r" * 257}, "ml_repo_ref", "at most 256 characters"),
        ({"ml_repo_url": "--upload-pack=x"}, "ml_repo_url", "it starts with '-'"),
        ({"ml_repo_url": "https://h/r\nx"}, "ml_repo_url", "control character"),
        ({"ml_repo_url": "https://h/" + "r" * 2048}, "ml_repo_url", "at most 2048 characters"),
        ({"customerID": "-x"}, "customerID", "should match pattern"),
        ({"training": {"data_tags": ["t"] * 65}}, "training_configuration.data_tags",
         "at most 64 items"),
        ({"training": {"data_tags": ["t" * 129]}}, "training_configuration.data_tags",
         "1-128 letters"),
        ({"training": {"strategy_params": {"eta": "x" * 16_384}}},
         "training_configuration.strategy_params", "at most 16384 are allowed"),
        ({"learner_platforms": ["linux/amd64"] * 1001}, "learner_platforms", "at most 1000"),
    ],
)  # fmt: skip
def test_oversized_or_option_like_fields_name_themselves(
    fields: dict[str, Any], field: str, message: str
) -> None:
    loc, msg = _refusal(_body(**fields))

    assert loc == field
    assert message in msg


@pytest.mark.parametrize("ref", ["main", "v1.2", "release/2026-12", "a11b8c45b99c"])
def test_branches_tags_and_commits_are_still_refs(ref: str) -> None:
    assert ProjectCreate.model_validate(_body(ml_repo_ref=ref)).ml_repo_ref == ref


def test_fields_at_their_limits_are_accepted() -> None:
    body = _body(
        training={"data_tags": ["t" * 128] * 64, "strategy_params": {"eta": "x" * 16_000}},
        ml_repo_ref="r" * 256,
        customerID="c" * 128,
    )

    project = ProjectCreate.model_validate(body)

    assert len(project.training_configuration.data_tags) == 64


def test_mock_data_customer_must_be_a_customer_id() -> None:
    body = {
        "customerID": "-x",
        "mock_data_configuration": {
            "dataset_name": "digits", "number_of_partitions": 1, "data_tag": "d",
        },
    }  # fmt: skip

    with pytest.raises(ValidationError) as error:
        MockDataRequest.model_validate(body)

    assert error.value.errors()[0]["loc"] == ("customerID",)
