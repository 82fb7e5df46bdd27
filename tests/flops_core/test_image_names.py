"""Image names: sanitising to the registry grammar and the refs of a project's images."""

from __future__ import annotations

import re

import pytest

from flops_core.image_names import (
    normalize_registry,
    repo_name_from_url,
    sanitize_component,
    sanitize_tag,
)
from image_builder import image_refs

# The Distribution reference grammar for one path component.
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*$")
_SHA = "9FFDCED4050152457C4D62F9E52D1CF69EEDEEF4"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ACME", "acme"),
        ("Acme Corp", "acme-corp"),
        ("a__b", "a__b"),
        ("a___b", "a-b"),
        ("a.-b", "a-b"),
        ("--x--", "x"),
        ("über/ML", "ber-ml"),
        ("team_1.prod", "team_1.prod"),
        ("a---b", "a---b"),
    ],
)
def test_sanitize_component_gives_valid_components(value: str, expected: str) -> None:
    # Execute
    result = sanitize_component(value)

    # Assert
    assert result == expected
    assert _COMPONENT.match(result)


def test_sanitize_component_refuses_names_without_letters_or_digits() -> None:
    with pytest.raises(ValueError, match="no letters or digits"):
        sanitize_component("--- ...", what="customer")


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://github.com/oakestra/flops-ml-repo.git", "flops-ml-repo"),
        ("https://user:secret@git.example.com/group/Sub/My_Repo/", "my_repo"),
        ("git@github.com:owner/Digits.Demo.git", "digits.demo"),
        ("file:///tmp/pytest-1/sklearn-digits", "sklearn-digits"),
        ("/srv/repos/mnist repo", "mnist-repo"),
    ],
)
def test_repo_name_is_the_last_path_component_without_git(url: str, name: str) -> None:
    assert repo_name_from_url(url) == name


def test_image_refs_name_both_images_with_the_commit_as_tag() -> None:
    # Execute
    refs = image_refs("http://127.0.0.1:5050/", "Customer One", "https://h/o/Repo.git", _SHA)

    # Assert
    tag = _SHA.lower()
    assert refs == {
        "learner": f"127.0.0.1:5050/customer-one/repo/learner:{tag}",
        "aggregator": f"127.0.0.1:5050/customer-one/repo/aggregator:{tag}",
    }


def test_sanitize_tag_and_registry() -> None:
    assert sanitize_tag(".v1/beta") == "v1-beta"
    assert normalize_registry("Registry.Example.com:443") == "registry.example.com:443"
    with pytest.raises(ValueError, match="host"):
        normalize_registry("registry.example.com/path")
