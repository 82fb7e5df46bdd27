"""The flavour base: find it in the registry, or resolve its lock, build it and push it.

A flavour base is named `<registry>/flops/base-<flavor>:<key>`, where the key hashes what
decides its content as declared (base image ref, the pinned runtime requirements, the
flavour, the Containerfile). The transitive versions pip picked when the base was built
travel with it, as the label `io.flops.runtime-lock`: every project image built on the
base resolves its repo's dependencies against exactly those versions, however long ago
the base was built, and a base is only rebuilt when its declared inputs change.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from flops_core.flops_tree import FlopsTree
from flops_core.logs import get_logger
from flops_core.registry_client import RegistryClient, split_ref
from image_builder.build_context import normalize_tree, write_lines
from image_builder.buildah import Buildah
from image_builder.cross_install import prepare_platform, target_arch
from image_builder.errors import RuntimeSourceError
from image_builder.flavor_containerfile import FLAVOR_CONTAINERFILE
from image_builder.flavors import Flavor, base_image_key, flavor_base_repository
from image_builder.pip_resolver import PipSettings, resolve_requirements

__all__ = [
    "BASE_KEY_LABEL",
    "RUNTIME_LOCK_LABEL",
    "FlavorBase",
    "FlavorBaseSpec",
    "build_flavor_base",
    "find_flavor_base",
    "flavor_base_at",
    "flavor_base_spec",
    "resolve_runtime_lock",
]

_log = get_logger("image_builder.flavor_base")

RUNTIME_LOCK_LABEL = "io.flops.runtime-lock"
BASE_KEY_LABEL = "io.flops.base-key"
_LOCK_FILE = "flops-runtime.lock"


@dataclass(frozen=True)
class FlavorBaseSpec:
    """What a flavour base is made of, and its name.

    Parameters
    ----------
    flavor : Flavor
        The flavour.
    base_image : str
        The image it starts FROM.
    requirements : tuple[str, ...]
        The declared runtime and flavour requirements.
    containerfile : str
        The text of the Containerfile (`FLAVOR_CONTAINERFILE`).
    key : str
        Hash of the above.
    ref : str
        `<registry>/flops/base-<flavor>:<key>`.
    version : str
        The FLOps version (a label only).
    """

    flavor: Flavor
    base_image: str
    requirements: tuple[str, ...]
    containerfile: str
    key: str
    ref: str
    version: str


@dataclass(frozen=True)
class FlavorBase:
    """A flavour base in the registry: its pinned ref and the versions it holds."""

    ref: str
    digest: str
    lock: tuple[str, ...]

    @property
    def pinned_ref(self) -> str:
        """`<repository>@sha256:...`: what project images start FROM."""
        return f"{self.ref.rsplit(':', 1)[0]}@{self.digest}"


def flavor_base_spec(
    tree: FlopsTree, flavor: Flavor, *, registry: str, base_image: str
) -> FlavorBaseSpec:
    """Name the flavour base for `flavor` on `base_image`."""
    containerfile = FLAVOR_CONTAINERFILE
    requirements = flavor.requirements(tree)
    key = base_image_key(
        base_image=base_image, requirements=requirements, flavor=flavor, containerfile=containerfile
    )
    ref = f"{flavor_base_repository(registry, flavor.name)}:{key}"
    return FlavorBaseSpec(flavor, base_image, requirements, containerfile, key, ref, tree.version)


def find_flavor_base(
    spec: FlavorBaseSpec, client: RegistryClient, platforms: Sequence[str]
) -> FlavorBase | None:
    """The flavour base when the registry has it for every platform (with its lock), else None.

    Raises
    ------
    RegistryUnavailableError
        When the registry cannot be reached.
    """
    _, repository, tag = split_ref(spec.ref)
    return flavor_base_at(client, repository, tag, platforms, ref=spec.ref)


def flavor_base_at(
    client: RegistryClient, repository: str, reference: str, platforms: Sequence[str], *, ref: str
) -> FlavorBase | None:
    """The image `repository:reference` as the flavour base `ref`, else None.

    It is one when the registry has it for every platform and it carries the runtime lock
    (`RUNTIME_LOCK_LABEL`); an image without the lock was not made by this builder.

    Raises
    ------
    RegistryUnavailableError
        When the registry cannot be reached.
    """
    info = client.manifest(repository, reference)
    if info is None or not info.has_platforms(platforms):
        return None
    labels = client.image_labels(repository, reference, platforms[0])
    lock = tuple(labels.get(RUNTIME_LOCK_LABEL, "").split())
    if not lock:
        return None
    return FlavorBase(ref, info.digest, lock)


def resolve_runtime_lock(
    spec: FlavorBaseSpec, *, settings: PipSettings, work_dir: Path
) -> tuple[str, ...]:
    """Resolve the base's requirements into the pinned lock it will be built from.

    Raises
    ------
    DependencyResolutionError, DependencyDownloadError
        As `resolve_requirements`.
    RuntimeSourceError
        When a runtime requirement is a direct URL reference.
    """
    what = f"the {spec.flavor.name} flavour base"
    lines = resolve_requirements(
        spec.requirements,
        settings=settings.with_extra_indexes(spec.flavor.extra_index_urls),
        work_dir=work_dir,
        what=what,
    )
    direct = [line for line in lines if " @ " in line]
    if direct:  # the lock travels as a space-separated label of name==version
        raise RuntimeSourceError(f"{what} must come from a package index, not {direct[0]}")
    return tuple(lines)


def build_flavor_base(
    spec: FlavorBaseSpec,
    *,
    lock: Sequence[str],
    platforms: Sequence[str],
    buildah: Buildah,
    settings: PipSettings,
    registry: str,
    work_dir: Path,
) -> FlavorBase:
    """Build the flavour base for every platform from `lock` and push it.

    Raises
    ------
    ContainerBuildError
        When the build fails.
    RegistryUnavailableError, RegistryError
        When the push fails.
    """
    context = work_dir / "context"
    context.mkdir(parents=True, exist_ok=True)
    write_lines(context / _LOCK_FILE, lock)
    indexes = settings.with_extra_indexes(spec.flavor.extra_index_urls)

    def prepare(platform: str) -> None:
        started = time.monotonic()
        folder = context / f"prepared-{target_arch(platform)}"
        if prepare_platform(lock, platform=platform, dest=folder, settings=indexes):
            seconds = time.monotonic() - started
            _log.info("%s: runtime wheels installed natively in %.1f s", platform, seconds)

    with ThreadPoolExecutor(max_workers=len(platforms), thread_name_prefix="prepare") as pool:
        list(pool.map(prepare, platforms))
    normalize_tree(context)
    volumes: list[tuple[Path, str]] = []
    pip_conf = indexes.pip_conf()
    if pip_conf:
        conf = work_dir / "pip.conf"
        conf.touch(mode=0o600)
        conf.write_text(pip_conf, encoding="utf-8")
        volumes.append((conf, "/etc/pip.conf"))
    containerfile = work_dir / "flavor.Containerfile"
    containerfile.write_text(spec.containerfile, encoding="utf-8")
    manifest = f"flops-base-{spec.flavor.name}-{uuid.uuid4().hex[:12]}"
    try:
        buildah.build(
            containerfile=containerfile,
            context=context,
            manifest=manifest,
            platforms=platforms,
            build_args={"BASE_IMAGE": spec.base_image, "FLAVOR": spec.flavor.name},
            labels={
                RUNTIME_LOCK_LABEL: " ".join(lock),
                BASE_KEY_LABEL: spec.key,
                "org.opencontainers.image.version": spec.version,
            },
            volumes=volumes,
            layers=False,  # one new layer; a base is rebuilt only when its key changes
        )
        digest = buildah.push_manifest(
            manifest, spec.ref, registry=registry, digest_file=work_dir / "digest"
        )
    finally:
        buildah.remove_manifest(manifest)
    return FlavorBase(spec.ref, digest, tuple(lock))
