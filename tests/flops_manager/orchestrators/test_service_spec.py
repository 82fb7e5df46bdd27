"""`ServiceSpec`: validation rules and the redaction of secrets in its text forms."""

import pytest
from pydantic import ValidationError

from flops_manager.orchestrators import PortMapping, RestartPolicy, ServiceSpec
from flops_manager.orchestrators.service_spec import is_secret_key, redact_env


def spec(**fields: object) -> ServiceSpec:
    return ServiceSpec.model_validate(
        {"name": "svc", "project_id": "p", "role": "learner", **fields}
    )


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("HF_TOKEN", True),
        ("db_password", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("API_KEY", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("MLFLOW_TRACKING_URI", False),
        ("PATH", False),
    ],
)
def test_secret_keys_are_recognised(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_redaction_masks_secret_values_and_url_credentials() -> None:
    env = {"HF_TOKEN": "abc", "URI": "http://user:pw@host:5000/x", "PLAIN": "value"}

    assert redact_env(env) == {"HF_TOKEN": "***", "URI": "http://***@host:5000/x", "PLAIN": "value"}


def test_validation_errors_do_not_echo_secrets() -> None:
    with pytest.raises(ValidationError) as error:
        spec(env={"HF_TOKEN": "s3cr3t"}, one_shot=True, restart=RestartPolicy(policy="on_failure"))

    assert "s3cr3t" not in str(error.value)
    assert "one-shot" in str(error.value)


@pytest.mark.parametrize(
    "fields",
    [
        {"env": {"BAD-NAME": "x"}},
        {"platforms": ["amd64"]},
        {"ports": [{"container_port": 0}]},
        {"resources": {"vcpus": 0}},
        {"project_id": ""},
        {"unknown_field": 1},
    ],
)
def test_invalid_fields_are_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        spec(**fields)


def test_published_port_defaults_to_the_container_port() -> None:
    assert PortMapping(container_port=8080).published_port == 8080
    assert PortMapping(container_port=8080, host_port=18080).published_port == 18080
