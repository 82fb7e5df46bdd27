"""The Buildah adapter: multi-platform builds into a manifest list, pushing it, storage images.

Inside the builder container Buildah runs with vfs storage and chroot isolation; those
come from `STORAGE_DRIVER` and `BUILDAH_ISOLATION` (read by the CLI into `BuildahSettings`)
and nothing here assumes a host path. RUN steps use the host's network (`--network host`)
so pip reaches the package index through whatever proxy the host uses, with the host's CA
bundle mounted over the image's (mounts are not part of any layer). Every failure becomes
a `ContainerBuildError` or `RegistryUnavailableError` carrying the relevant output lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flops_core.commands import CommandResult, CommandTimeoutError, run_command
from flops_core.logs import get_logger
from image_builder.errors import ContainerBuildError, RegistryError, RegistryUnavailableError
from image_builder.pip_resolver import relevant_pip_lines

__all__ = ["CA_BUNDLE_TARGET", "BuildOutput", "Buildah", "BuildahSettings"]

#: Where the build's CA bundle is mounted: the Debian path pip is pointed at in RUN steps.
CA_BUNDLE_TARGET = "/etc/ssl/certs/ca-certificates.crt"

_log = get_logger("image_builder.buildah")

_UNREACHABLE = re.compile(
    r"connection refused|no such host|i/o timeout|network is unreachable|connection reset|"
    r"server gave HTTP response to HTTPS client",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class BuildahSettings:
    """How Buildah is run.

    Parameters
    ----------
    storage_driver : str | None
        `vfs` inside an unprivileged-overlay container; None: Buildah's default.
    isolation : str | None
        `chroot` inside a container; None: Buildah's default (`oci`).
    tls_verify : bool
        Whether registries must use verified HTTPS (False for a plain-HTTP registry).
    ca_bundle : Path | None
        A CA bundle mounted into RUN steps (e.g. one that trusts a TLS-intercepting proxy).
    network : str
        The network of RUN steps.
    build_timeout, push_timeout : float
        Seconds a build or a push may take.
    environment : Mapping[str, str] | None
        The environment Buildah runs in; None: this process's.
    """

    storage_driver: str | None = None
    isolation: str | None = None
    tls_verify: bool = True
    ca_bundle: Path | None = None
    network: str = "host"
    build_timeout: float = 7200.0
    push_timeout: float = 1800.0
    environment: Mapping[str, str] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class BuildOutput:
    """What a build printed: its lines and how many steps came from the layer cache."""

    lines: tuple[str, ...]

    @property
    def cached_steps(self) -> int:
        """Steps reused from the cache (summed over platforms)."""
        return sum(1 for line in self.lines if "Using cache" in line)


class Buildah:
    """Runs `buildah` with `settings`; output goes to `log_file` and `on_line`.

    Parameters
    ----------
    settings : BuildahSettings
        How to run Buildah.
    log_file : Path | None
        Appended with every output line.
    on_line : Callable[[str], None] | None
        Called with every output line (e.g. to log at debug level).
    """

    def __init__(
        self,
        settings: BuildahSettings,
        *,
        log_file: Path | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._log_file = log_file
        self._on_line = on_line

    def build(
        self,
        *,
        containerfile: Path,
        context: Path,
        manifest: str,
        platforms: Sequence[str],
        build_args: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        volumes: Sequence[tuple[Path, str]] = (),
        pull: str = "true",
        layers: bool = True,
    ) -> BuildOutput:
        """Build `containerfile` for every platform into the local manifest list `manifest`.

        With `layers` every step is a cached layer; without, Buildah commits once, so all
        new content is one layer: fewer layers to pull, and far less disk with vfs storage,
        which keeps a full copy of the file system per layer.

        Raises
        ------
        ContainerBuildError
            When the build fails; the reason names the failed step.
        """
        command = [
            *self._global(),
            *("build", f"--layers={str(layers).lower()}", "--network", self.settings.network),
            f"--pull={pull}",
            *("--platform", ",".join(platforms), "--manifest", manifest, "-f", str(containerfile)),
            f"--tls-verify={str(self.settings.tls_verify).lower()}",
        ]
        if self.settings.isolation:
            command += ["--isolation", self.settings.isolation]
        for key, value in (build_args or {}).items():
            command += ["--build-arg", f"{key}={value}"]
        for key, value in (labels or {}).items():
            command += ["--label", f"{key}={value}"]
        mounts = list(volumes)
        if self.settings.ca_bundle is not None:
            mounts.append((self.settings.ca_bundle, CA_BUNDLE_TARGET))
        for source, target in mounts:
            command += ["-v", f"{source.absolute()}:{target}:ro"]
        result = self._run([*command, str(context)], self.settings.build_timeout, "build")
        if result.returncode != 0:
            raise ContainerBuildError(
                f"buildah build of {containerfile.name} failed: {_error_line(result)}",
                output=relevant_pip_lines("\n".join(result.lines)),
            )
        return BuildOutput(result.lines)

    def push_manifest(self, manifest: str, ref: str, *, registry: str, digest_file: Path) -> str:
        """Push the list `manifest` and its images to `ref`; return the list's digest.

        Raises
        ------
        RegistryUnavailableError
            When the registry cannot be reached.
        RegistryError
            When the push is refused.
        """
        command = [
            *self._global(),
            *("manifest", "push", "--all", "--quiet", "--digestfile", str(digest_file)),
            f"--tls-verify={str(self.settings.tls_verify).lower()}",
            *(manifest, f"docker://{ref}"),
        ]
        result = self._run(command, self.settings.push_timeout, "push")
        if result.returncode != 0:
            detail = _error_line(result)
            if _UNREACHABLE.search(detail):
                raise RegistryUnavailableError(registry, detail)
            raise RegistryError(f"pushing {ref} failed: {detail}", output=result.tail_lines())
        return digest_file.read_text(encoding="utf-8").strip()

    def remove_manifest(self, manifest: str) -> None:
        """Remove the local manifest list `manifest` (not its images); never raises."""
        try:
            exists = self._run([*self._global(), "manifest", "exists", manifest], 60.0, "manifest")
            if exists.returncode == 0:
                self._run([*self._global(), "manifest", "rm", manifest], 60.0, "manifest")
        except ContainerBuildError as e:
            _log.warning("could not remove the manifest list %s: %s", manifest, e)

    def storage_root(self) -> Path:
        """Where Buildah keeps images and layers (its graph root, as `buildah info` says).

        Raises
        ------
        ContainerBuildError
            When Buildah cannot be run or says nothing usable.
        """
        command = [*self._global(), "info", "--format", "{{.store.GraphRoot}}"]
        result = self._run(command, 120.0, "info")
        paths = [line.strip() for line in result.lines if line.strip().startswith("/")]
        if result.returncode != 0 or not paths:
            raise ContainerBuildError(f"buildah info failed: {_error_line(result)}")
        return Path(paths[-1])

    def list_images(self) -> str:
        """The output of `buildah images --json`: every image that is not only a cached layer.

        Raises
        ------
        ContainerBuildError
            When the listing fails.
        """
        result = self._run([*self._global(), "images", "--json"], 300.0, "images")
        if result.returncode != 0:
            raise ContainerBuildError(f"buildah images failed: {_error_line(result)}")
        return "\n".join(result.lines)

    def remove_image(self, *references: str) -> None:
        """Remove an image by its id (or all its names), with its parents that have no name.

        Raises
        ------
        ContainerBuildError
            When Buildah refuses (e.g. a container uses the image).
        """
        result = self._run([*self._global(), "rmi", *references], 600.0, "rmi")
        if result.returncode != 0:
            raise ContainerBuildError(
                f"buildah rmi {' '.join(references)} failed: {_error_line(result)}"
            )

    def _global(self) -> list[str]:
        command = ["buildah"]
        if self.settings.storage_driver:
            command += ["--storage-driver", self.settings.storage_driver]
        return command

    def _run(self, command: list[str], timeout: float, what: str) -> CommandResult:
        try:
            return run_command(
                command,
                timeout=timeout,
                on_line=self._on_line,
                log_file=self._log_file,
                env=self.settings.environment,
            )
        except CommandTimeoutError as e:
            raise ContainerBuildError(
                f"buildah {what} ran longer than {timeout:g} s", output=e.lines[-20:]
            ) from e
        except OSError as e:
            raise ContainerBuildError(
                f"cannot run buildah ({e}); install Buildah or run the builder image"
            ) from e


def _error_line(result: CommandResult) -> str:
    errors = [line for line in result.lines if line.lower().startswith(("error", "level=error"))]
    line = errors[-1] if errors else (result.tail_lines(1) or [f"exit code {result.returncode}"])[0]
    line = line.removeprefix("Error: ").removeprefix("error: ").strip()
    return line if len(line) <= 400 else line[:397] + "..."
