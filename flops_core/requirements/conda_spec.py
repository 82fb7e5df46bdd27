"""Parse conda package specs (`numpy=1.26`, `conda-forge::numpy>=1.2`) into pip terms."""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet

__all__ = ["CondaSpec", "parse_conda_spec"]

_SPEC = re.compile(
    r"^(?:[^\s:]+::)?"  # channel (and subdir) prefix: conda-forge::, conda-forge/linux-64::
    r"(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]*)"
    r"\s*(?:\[(?P<brackets>[^\]]*)\])?"
    r"\s*(?P<rest>.*)$"
)
_BRACKET_ITEM = re.compile(r"(\w+)\s*=\s*(?:'([^']*)'|\"([^\"]*)\"|([^,\s]*))")
_OPERATOR_SPACE = re.compile(r"([<>=!~]=?)\s+")


@dataclass(frozen=True)
class CondaSpec:
    """One conda package spec, translated for pip.

    Parameters
    ----------
    name : str
        The lower-case conda package name, without channel.
    specifier : str
        The pip version specifier (e.g. `==1.26.*`), empty for any version.
    build : str | None
        The conda build string, if the spec pinned one.
    untranslatable : str | None
        The conda version expression that pip cannot express, if any.
    """

    name: str
    specifier: str = ""
    build: str | None = None
    untranslatable: str | None = None


def parse_conda_spec(text: str) -> CondaSpec:
    """Parse one conda package spec from an environment file's `dependencies:` list.

    Conda's version syntax differs from pip's in ways that matter: `numpy=1.26` is fuzzy
    (`==1.26.*`), `numpy==1.26` and `numpy 1.26` are exact, and a build string
    (`numpy=1.26.4=py311_0`) makes the version exact. Build strings have no pip counterpart
    and are returned separately; version expressions pip cannot express (alternatives with
    `|`) are returned as `untranslatable`, with an empty specifier (any version).

    Parameters
    ----------
    text : str
        E.g. `numpy`, `numpy=1.26`, `numpy=1.26.*`, `numpy>=1.2,<2`, `numpy 1.26.4 py311_0`,
        `conda-forge::numpy=1.26=py311_0` or `numpy[version='>=1.2']`.

    Returns
    -------
    CondaSpec
        The package name, its pip version specifier and build string.

    Raises
    ------
    ValueError
        When `text` is not a conda package spec.
    """
    match = _SPEC.match(text.strip())
    if match is None:
        raise ValueError("expected a package name, optionally with version and build")
    name = match["name"].lower()
    rest = match["rest"].strip()
    build: str | None = None
    if match["brackets"] is not None:
        if rest:
            raise ValueError("give the version either in brackets or after the name")
        items = {m[0]: m[1] or m[2] or m[3] for m in _BRACKET_ITEM.findall(match["brackets"])}
        rest = items.get("version", "")
        build = items.get("build") or None
    try:
        specifier, spec_build = _version_and_build(rest)
    except _Untranslatable:
        return CondaSpec(name, "", build, untranslatable=rest)
    return CondaSpec(name, specifier, build or spec_build)


class _Untranslatable(Exception):
    """Raised internally for a valid conda version expression pip cannot express."""


def _version_and_build(rest: str) -> tuple[str, str | None]:
    """Translate the part after the name into a pip specifier and a build string."""
    text = _OPERATOR_SPACE.sub(r"\1", rest)
    if not text:
        return "", None
    parts = text.split()
    if len(parts) > 2:
        raise ValueError(f"unexpected {' '.join(parts[2:])!r} after version and build")
    if "|" in parts[0]:
        raise _Untranslatable
    if len(parts) == 2:  # "1.26.4 py311_0"
        return _checked(_exact(parts[0])), parts[1]
    token = parts[0]
    if token.startswith("=="):
        version, _, build = token[2:].partition("=")
        return _checked(_exact(version)), build or None
    if token.startswith("="):
        version, _, build = token[1:].partition("=")
        if not version:
            raise ValueError("missing version after '='")
        if build or version.endswith("*"):
            return _checked(_exact(version)), build or None
        return _checked(f"=={version}.*"), None
    if token[0] in "<>!~":
        return _checked(token), None
    if token[0].isalnum():
        return _checked(_exact(token)), None
    raise ValueError(f"cannot read version {rest!r}")


def _exact(version: str) -> str:
    """Return the pip specifier matching exactly `version` (a trailing `*` is a prefix)."""
    if version.endswith("*"):
        return f"=={version.rstrip('*').rstrip('.')}.*"
    return f"=={version}"


def _checked(specifier: str) -> str:
    try:
        SpecifierSet(specifier)
    except InvalidSpecifier as e:
        raise _Untranslatable from e
    return specifier
