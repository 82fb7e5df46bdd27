"""Parse pip requirements files (and pip lines embedded in other files) into requirements."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from flops_core.errors import PermanentError
from flops_core.logs import get_logger

__all__ = [
    "DependencyError",
    "DependencyFileError",
    "RequirementLines",
    "display_path",
    "parse_requirement_lines",
    "read_requirements_file",
    "read_text_file",
]

_logger = get_logger("utils.dependencies")

_COMMENT = re.compile(r"(^|\s+)#.*$")
_OPTION = re.compile(r"^(--[A-Za-z][\w-]*|-[A-Za-z])\s*=?\s*(.*)$")
_TRAILING_OPTION = re.compile(r"\s+(--?[A-Za-z][\w-]*)")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_EGG = re.compile(r"[#&]egg=([A-Za-z0-9][A-Za-z0-9._-]*)")


class DependencyError(PermanentError):
    """Base of the errors raised while reading a repo's dependencies; permanent."""


class DependencyFileError(DependencyError):
    """Raised when a dependency file cannot be read or parsed; names the file and line.

    Parameters
    ----------
    file : str
        The file, relative to the repo root.
    line : int | None
        The 1-based line of the problem, when known.
    reason : str
        What is wrong, in one line.
    """

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        where = f"{file}, line {line}" if line is not None else file
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason


@dataclass
class RequirementLines:
    """Requirement strings read from pip lines, and warnings about lines that were skipped."""

    requirements: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def display_path(path: Path, repo_dir: Path) -> str:
    """Return `path` relative to `repo_dir` (POSIX style), or as given when outside it."""
    try:  # resolve the folders but not a final symbolic link: name the link, not its target
        return (path.parent.resolve() / path.name).relative_to(repo_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def read_text_file(path: Path, *, repo_dir: Path) -> str:
    """Return the UTF-8 text of `path`, a file inside `repo_dir`.

    Raises
    ------
    DependencyFileError
        When the file is a link out of the repo (its lines could otherwise reach error
        messages), cannot be read, or is not UTF-8.
    """
    name = display_path(path, repo_dir)
    if not path.resolve().is_relative_to(repo_dir.resolve()):
        raise DependencyFileError(name, None, "is a link that points outside the repo")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DependencyFileError(name, None, f"cannot be read: {e.strerror}") from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DependencyFileError(name, line, "not UTF-8 text") from e


def read_requirements_file(path: Path, *, repo_dir: Path) -> RequirementLines:
    """Read a pip requirements file, following `-r` includes that stay inside the repo.

    Parameters
    ----------
    path : Path
        The requirements file.
    repo_dir : Path
        The repo root; includes may not point outside it.

    Returns
    -------
    RequirementLines
        Requirement strings in file order, and warnings for skipped options.
    """
    result = RequirementLines()
    _Parser(repo_dir, result).read_file(path, stack=())
    return result


def parse_requirement_lines(
    lines: Iterable[tuple[int, str]], *, origin: Path, repo_dir: Path
) -> RequirementLines:
    """Parse numbered pip lines that belong to `origin` (e.g. a conda file's `pip:` list).

    Parameters
    ----------
    lines : Iterable[tuple[int, str]]
        `(line number, text)` pairs; the numbers are used in error messages.
    origin : Path
        The file the lines come from; `-r` includes are relative to its folder.
    repo_dir : Path
        The repo root; includes may not point outside it.

    Returns
    -------
    RequirementLines
        Requirement strings in order, and warnings for skipped options.
    """
    result = RequirementLines()
    _Parser(repo_dir, result).parse(lines, origin=origin, stack=(origin.resolve(),))
    return result


class _Parser:
    """Follows pip's line handling: continuations, comments, options, includes."""

    def __init__(self, repo_dir: Path, result: RequirementLines) -> None:
        self._root = repo_dir.resolve()
        self._result = result

    def read_file(self, path: Path, *, stack: tuple[Path, ...]) -> None:
        text = read_text_file(path, repo_dir=self._root)
        numbered = enumerate(text.splitlines(), start=1)
        self.parse(numbered, origin=path, stack=(*stack, path.resolve()))

    def parse(
        self, lines: Iterable[tuple[int, str]], *, origin: Path, stack: tuple[Path, ...]
    ) -> None:
        name = display_path(origin, self._root)
        ignored_options: set[str] = set()
        for lineno, line in _logical_lines(lines):
            option = _OPTION.match(line)
            if option is not None:
                self._option(option.group(1), option.group(2).strip(), name, lineno, origin, stack)
                continue
            trailing = _TRAILING_OPTION.search(line)
            if trailing is not None:
                ignored_options.update(_TRAILING_OPTION.findall(line[trailing.start() :]))
                line = line[: trailing.start()]
            self._result.requirements.append(self._requirement(line, name, lineno))
        if ignored_options:
            self._result.warnings.append(
                f"{name}: per-requirement options ignored: {', '.join(sorted(ignored_options))}"
            )

    def _option(
        self,
        option: str,
        value: str,
        name: str,
        lineno: int,
        origin: Path,
        stack: tuple[Path, ...],
    ) -> None:
        if option not in ("-r", "--requirement"):
            what = f"{option} {value}".strip()
            self._result.warnings.append(f"{name}, line {lineno}: option {what!r} skipped")
            _logger.debug("skipped option %s in %s line %s", option, name, lineno)
            return
        if not value:
            raise DependencyFileError(name, lineno, f"{option} needs a file name")
        target = (origin.parent / value).resolve()
        if not target.is_relative_to(self._root):
            raise DependencyFileError(name, lineno, f"include {value!r} points outside the repo")
        if target in stack:
            raise DependencyFileError(name, lineno, f"include {value!r} forms a cycle")
        if not target.is_file():
            raise DependencyFileError(name, lineno, f"included file {value!r} does not exist")
        self.read_file(target, stack=stack)

    def _requirement(self, line: str, name: str, lineno: int) -> str:
        try:
            Requirement(line)
        except InvalidRequirement as e:
            if _URL.match(line):
                return self._url_requirement(line, name, lineno)
            if line.startswith((".", "/", "~")):
                self._result.warnings.append(
                    f"{name}, line {lineno}: local path {line!r} kept as written"
                )
                return line
            reason = str(e).splitlines()[0]
            raise DependencyFileError(
                name, lineno, f"invalid requirement {line!r}: {reason}"
            ) from e
        return line

    def _url_requirement(self, line: str, name: str, lineno: int) -> str:
        url, *rest = re.split(r"\s+;\s*", line, maxsplit=1)
        marker = rest[0].strip() if rest else ""
        package = _package_of_url(url)
        if package is None:
            self._result.warnings.append(
                f"{name}, line {lineno}: cannot tell which package {url!r} provides; "
                "kept as written"
            )
            return line
        requirement = f"{package} @ {url}" + (f" ; {marker}" if marker else "")
        try:
            Requirement(requirement)
        except InvalidRequirement:
            return line
        return requirement


def _package_of_url(url: str) -> str | None:
    """Return the project name a URL requirement installs, when the URL says it."""
    egg = _EGG.search(url)
    if egg is not None:
        return egg.group(1)
    filename = url.split("#", 1)[0].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        if filename.endswith((".tar.gz", ".zip")):
            return str(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None


def _logical_lines(lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Join `\\`-continued lines, drop comments and blanks; keep the first line's number."""
    parts: list[str] = []
    start = 0
    for lineno, raw in lines:
        if not parts:
            start = lineno
        line = raw.rstrip("\r\n")
        if line.endswith("\\") and not line.lstrip().startswith("#"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line.strip())
        text = _COMMENT.sub("", " ".join(parts)).strip()
        parts = []
        if text:
            yield start, text
    if parts:
        text = _COMMENT.sub("", " ".join(parts)).strip()
        if text:
            yield start, text
