"""What a repo ref and a repo URL may look like before they go near a `git` command line.

A ref is a branch or tag name under `git check-ref-format`'s rules, with no leading `-`
(so that it can never be read as an option), or a commit id (7 to 40 hex digits). A repo
URL may not start with `-` and holds no control characters (line breaks included). The API
checks both (a 422 naming the field); `fetch_repo` checks them again, because the image
builder can be run by hand, and passes them after `--end-of-options` as well.
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_REF_LENGTH",
    "MAX_REPO_URL_LENGTH",
    "REF_RULES",
    "check_ref",
    "check_repo_url",
    "ref_problem",
    "repo_url_problem",
]

MAX_REF_LENGTH = 256
MAX_REPO_URL_LENGTH = 2048

REF_RULES = (
    "a branch or tag name (letters, digits and `/._-`, as `git check-ref-format` allows: not "
    "starting with `-` or `/`, no `..`, `//`, `@{`, space, control characters or any of "
    "`~^:?*[\\`, no part starting with `.` or ending with `.lock`, not ending with `/` or `.`) "
    "or a commit id of 7 to 40 hex digits"
)
"""What a valid ref is, in the words of the error messages."""

_FORBIDDEN_IN_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_UNSAFE_IN_URL = re.compile(r"[\x00-\x1f\x7f]")


def ref_problem(ref: str) -> str | None:
    """Return what is wrong with `ref` as a branch, tag or commit id, or None if it is fine."""
    if problem := _command_line_problem(ref, MAX_REF_LENGTH, _FORBIDDEN_IN_REF, ""):
        return problem
    for part, problem in (
        ("..", "'..'"), ("@{", "'@{'"), ("//", "'//'"),
    ):  # fmt: skip
        if part in ref:
            return f"it contains {problem}"
    if ref == "@":
        return "it is '@'"
    if ref.startswith("/") or ref.endswith("/"):
        return "it starts or ends with '/'"
    if ref.endswith("."):
        return "it ends with '.'"
    for component in ref.split("/"):
        if component.startswith("."):
            return f"its part {component!r} starts with '.'"
        if component.endswith(".lock"):
            return f"its part {component!r} ends with '.lock'"
    return None


def check_ref(ref: str) -> str:
    """Return `ref` if it is a valid branch, tag or commit id.

    Raises
    ------
    ValueError
        Saying what is wrong and what is allowed (`REF_RULES`).
    """
    problem = ref_problem(ref)
    if problem is not None:
        raise ValueError(f"{ref[:80]!r} is not a valid ref: {problem}; allowed: {REF_RULES}")
    return ref


def repo_url_problem(url: str) -> str | None:
    """Return what makes `url` unusable as a repo URL on a command line, or None."""
    return _command_line_problem(url, MAX_REPO_URL_LENGTH, _UNSAFE_IN_URL, "the control character ")


def check_repo_url(url: str) -> str:
    """Return `url` if it can be handed to `git` as a repository.

    Raises
    ------
    ValueError
        Saying what is wrong (a leading `-`, control characters, too long).
    """
    problem = repo_url_problem(url)
    if problem is not None:
        raise ValueError(
            f"the repo URL is not usable: {problem}; give the repository's https or ssh URL"
        )
    return url


def _command_line_problem(
    text: str, max_length: int, forbidden: re.Pattern[str], what: str
) -> str | None:
    """What neither a ref nor a repo URL may be on a `git` command line, or None.

    Empty, longer than `max_length`, starting with `-` (read as an option), or holding a
    character `forbidden` matches (`what` names its kind in the message).
    """
    if not text:
        return "it is empty"
    if len(text) > max_length:
        return f"it is longer than {max_length} characters"
    if text.startswith("-"):
        return "it starts with '-'"
    if bad := forbidden.search(text):
        return f"it contains {what}{bad.group()!r}"
    return None
