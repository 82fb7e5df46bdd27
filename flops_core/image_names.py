"""Image names: a project's learner, aggregator and inference refs, in the registry grammar.

The grammar is the Distribution reference grammar: a name is `host[:port]/` followed by
path components of lowercase letters and digits joined by `.`, `_`, `__` or runs of `-`,
at most 255 characters in all; a tag is up to 128 of `[A-Za-z0-9_.-]`, not starting with
`.` or `-`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = [
    "IMAGE_ROLES",
    "INFERENCE_ROLE",
    "image_refs",
    "inference_image_ref",
    "normalize_registry",
    "repo_name_from_url",
    "sanitize_component",
    "sanitize_tag",
]

#: The image of a trained model's inference server (`<registry>/<customer>/<project>/inference`).
INFERENCE_ROLE = "inference"
#: The images built for every project, in build order.
IMAGE_ROLES: tuple[str, ...] = ("learner", "aggregator")

_SEPARATOR_RUN = re.compile(r"[^a-z0-9]+")
_VALID_SEPARATOR = re.compile(r"^(?:\.|_|__|-+)$")
_TAG_INVALID = re.compile(r"[^A-Za-z0-9_.-]+")
_MAX_COMPONENT = 64
_MAX_NAME = 255


def sanitize_component(value: str, *, what: str = "name") -> str:
    """Return `value` as one valid path component: lowercase, invalid runs become `-`.

    Parameters
    ----------
    value : str
        Any text, e.g. a customer id or a repo name.
    what : str
        What the value is, for the error message.

    Raises
    ------
    ValueError
        When nothing usable is left (e.g. `value` has no letter or digit).
    """

    def separator(match: re.Match[str]) -> str:
        run = match.group(0)
        return run if _VALID_SEPARATOR.match(run) else "-"

    cleaned = _SEPARATOR_RUN.sub(separator, value.strip().lower())
    cleaned = cleaned[:_MAX_COMPONENT].strip("._-")
    if not cleaned:
        raise ValueError(f"{what} {value!r} has no letters or digits to name an image with")
    return cleaned


def sanitize_tag(value: str) -> str:
    """Return `value` as a valid tag (a commit id stays as it is, lowercased).

    Raises
    ------
    ValueError
        When nothing usable is left.
    """
    cleaned = _TAG_INVALID.sub("-", value.strip().lower()).lstrip(".-")[:128]
    if not cleaned:
        raise ValueError(f"{value!r} cannot be used as an image tag")
    return cleaned


def normalize_registry(registry: str) -> str:
    """Return `registry` as `host[:port]`: no scheme, no trailing slash, host lowercased.

    Raises
    ------
    ValueError
        When `registry` is empty or holds a path.
    """
    value = registry.strip()
    if "://" in value:
        value = urlsplit(value).netloc or ""
    value = value.rstrip("/").lower()
    if not value or "/" in value or "@" in value:
        raise ValueError(f"registry {registry!r} must be host[:port], e.g. 127.0.0.1:5050")
    return value


def repo_name_from_url(repo_url: str) -> str:
    """The repo's name: the last path component of its URL (or path), without `.git`.

    Works for `https://host/owner/name.git`, `git@host:owner/name.git`, `file:///x/name`
    and plain paths; the result is sanitised with `sanitize_component`.
    """
    value = repo_url.strip()
    if "://" in value:
        value = urlsplit(value).path
    elif re.match(r"^[\w.-]+@[\w.-]+:", value):  # scp-like git@host:owner/name
        value = value.split(":", 1)[1]
    last = value.rstrip("/").rsplit("/", 1)[-1]
    if last.lower().endswith(".git"):
        last = last[: -len(".git")]
    return sanitize_component(last, what="repo name of")


def image_refs(registry: str, customer: str, repo_url: str, commit: str) -> dict[str, str]:
    """The tag refs of a project's images: `<registry>/<customer>/<repo>/<role>:<commit>`.

    Parameters
    ----------
    registry : str
        `host[:port]` of the registry (a scheme is dropped).
    customer : str
        The customer id; lowercased and sanitised.
    repo_url : str
        The ML repo's URL or path; its last path component names the image.
    commit : str
        The commit the images are built from; the tag.

    Returns
    -------
    dict[str, str]
        `learner` and `aggregator` to their refs.

    Raises
    ------
    ValueError
        When a part has nothing usable left, or the name is too long for the registry.
    """
    namespace = _namespace(registry, customer)
    repo = repo_name_from_url(repo_url)
    tag = sanitize_tag(commit)
    return {role: f"{_checked_name(f'{namespace}/{repo}/{role}')}:{tag}" for role in IMAGE_ROLES}


def inference_image_ref(registry: str, customer: str, project_id: str, version: str) -> str:
    """The ref of a model's inference image: `<registry>/<customer>/<project>/inference:<version>`.

    Parameters
    ----------
    registry : str
        `host[:port]` of the registry (a scheme is dropped).
    customer : str
        The customer id; lowercased and sanitised.
    project_id : str
        The FLOps project id; lowercased and sanitised.
    version : str
        The registered model version (MLflow's number, e.g. `3`); the tag.

    Raises
    ------
    ValueError
        When a part has nothing usable left, or the name is too long for the registry.
    """
    namespace = _namespace(registry, customer)
    project = sanitize_component(project_id, what="project id")
    return f"{_checked_name(f'{namespace}/{project}/{INFERENCE_ROLE}')}:{sanitize_tag(version)}"


def _namespace(registry: str, customer: str) -> str:
    """`<host[:port]>/<customer>`: where a customer's images live in the registry."""
    return f"{normalize_registry(registry)}/{sanitize_component(customer, what='customer')}"


def _checked_name(name: str) -> str:
    if len(name) > _MAX_NAME:
        raise ValueError(f"image name {name!r} is longer than {_MAX_NAME} characters")
    return name
