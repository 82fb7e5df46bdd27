"""One inference image build: from a registered MLflow model version to a pushed serving image.

Design. Like the project build (`build_job`), a fixed sequence of timed steps, each reported
as a `step_completed` event: `resolve` the model URI (an alias such as `@champion`) to its
version number, and read its run's metrics and tags; `download` the version's artifacts;
`generate` MLflow's serving Dockerfile with `mlflow models generate-dockerfile`; make sure
the flavour `base` exists (the model's flavour unless one is given; a `--base-image` that is
already a flavour base is used as it is); `dependencies`: compare what MLflow's Dockerfile
would pip-install (MLflow, the model's `requirements.txt`) with the base's pinned lock, resolve
only what is missing, and install it natively for each platform (`cross_install`); `render`
the adapted Containerfile (`inference_containerfile`); `build` all platforms into one manifest
list; `push` it as `<registry>/<customer>/<project>/inference:<version>`. Then, as after a
project build, Buildah's storage is pruned to the cache limit (`storage_prune`).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from flops_core.events import EventReporter
from flops_core.flops_tree import FlopsTree, locate_flops_tree
from flops_core.image_names import INFERENCE_ROLE, inference_image_ref
from flops_core.logs import get_logger
from flops_core.registry_client import RegistryClient, existing_images, split_ref
from image_builder.build_context import normalize_tree, write_lines
from image_builder.buildah import Buildah
from image_builder.cross_install import PREPARED_MARKER, prepare_platform, target_arch
from image_builder.errors import ModelSourceError, RegistryError
from image_builder.flavor_base import (
    FlavorBase,
    find_flavor_base,
    flavor_base_at,
    flavor_base_spec,
    resolve_runtime_lock,
)
from image_builder.flavors import FLAVORS
from image_builder.inference_containerfile import (
    EXTRA_REQUIREMENTS_FILE,
    adapt_dockerfile,
    missing_requirements,
    parse_generated_dockerfile,
)
from image_builder.inference_request import (
    InferenceBuildRequest,
    InferenceBuildResult,
    inference_labels,
)
from image_builder.model_source import (
    GENERATED_MODEL_DIR,
    download_model,
    generate_dockerfile,
    model_flavors,
    resolve_model_version,
)
from image_builder.pip_resolver import PipSettings, resolve_requirements
from image_builder.step_job import StepJob
from image_builder.storage_prune import BuildCache

__all__ = [
    "INFERENCE_STEPS",
    "InferenceBuildRequest",
    "InferenceBuildResult",
    "InferenceImageJob",
    "inference_labels",
]

_log = get_logger("image_builder.inference")

#: The steps of an inference image build, in order.
INFERENCE_STEPS: tuple[str, ...] = (
    "resolve",
    "download",
    "generate",
    "base",
    "dependencies",
    "render",
    "build",
    "push",
)
#: MLflow flavours (in the MLmodel file) to FLOps flavours, first match wins.
_MLFLOW_FLAVORS = (
    ("sklearn", "sklearn"),
    ("pytorch", "pytorch"),
    ("keras", "keras"),
    ("tensorflow", "tensorflow"),
)


class InferenceImageJob(StepJob[InferenceBuildRequest, InferenceBuildResult]):
    """Runs the steps of one inference image build and reports them.

    Parameters
    ----------
    request : InferenceBuildRequest
        What to build.
    reporter, buildah, pip_settings, tree, cache
        As for `StepJob`; `pip_settings` are for what the base lacks.
    mlflow_environ : Mapping[str, str] | None
        The environment of the `mlflow` subprocess; None: this process's.
    """

    first_step = INFERENCE_STEPS[0]
    event_fields: ClassVar[Mapping[str, Any]] = {"kind": INFERENCE_ROLE}
    _log = _log

    def __init__(
        self,
        request: InferenceBuildRequest,
        *,
        reporter: EventReporter,
        buildah: Buildah,
        pip_settings: PipSettings,
        tree: FlopsTree | None = None,
        mlflow_environ: Mapping[str, str] | None = None,
        cache: BuildCache | None = None,
    ) -> None:
        super().__init__(
            request,
            reporter=reporter,
            buildah=buildah,
            pip_settings=pip_settings,
            tree=tree,
            cache=cache,
        )
        self._mlflow_environ = mlflow_environ

    def _started_fields(self) -> dict[str, Any]:
        return {"model_uri": self.request.model_uri, "platforms": list(self.request.platforms)}

    def _succeeded_fields(self, result: InferenceBuildResult) -> dict[str, Any]:
        return {"image": result.image, "version": result.version}

    def _run_steps(self) -> InferenceBuildResult:
        req = self.request
        work = req.work_dir
        step = self._steps.step
        with step("resolve") as info:
            model = resolve_model_version(req.tracking_uri, req.model_uri)
            ref = inference_image_ref(req.registry, req.customer, req.project_id, model.version)
            info.update(model_name=model.name, version=model.version, metrics=model.metrics)
        with step("download"):
            model_dir = download_model(req.tracking_uri, model, work / "model")
            flavor = req.flavor or _flavor_of(model_flavors(model_dir))
        with step("generate"):
            context = work / "context"
            generated = parse_generated_dockerfile(
                generate_dockerfile(model_dir, context, environ=self._mlflow_environ)
            )
            requirements = _model_requirements(context / GENERATED_MODEL_DIR)
        with step("base") as info:
            base, built = self._base(flavor)
            info.update(image=base.pinned_ref, flavor=flavor, built=built)
        with step("dependencies") as info:
            wanted = [*generated.pip_requirements, *requirements]
            extra = self._extra_requirements(wanted, base.lock)
            prepared = self._prepare(extra, context)
            info.update(packages=extra, prepared=sorted(prepared))
        with step("render"):
            containerfile = work / "Containerfile.inference"
            containerfile.write_text(
                adapt_dockerfile(
                    generated,
                    base_image=base.pinned_ref,
                    extra_requirements=extra,
                    prepared_arches=prepared,
                ),
                encoding="utf-8",
            )
            labels = inference_labels(
                model=model,
                model_uri=req.model_uri,
                project_id=req.project_id,
                flops_version=(self._tree or locate_flops_tree()).version,
            )
            normalize_tree(context)
        with step("build"):
            manifest = self._new_manifest(f"flops-inference-{uuid.uuid4().hex[:12]}")
            self._buildah.build(
                containerfile=containerfile,
                context=context,
                manifest=manifest,
                platforms=req.platforms,
                labels=labels,
                volumes=self._pip_volumes(),
                pull="false",
                layers=False,  # one layer on the base: the model (and anything it adds)
            )
        with step("push") as info:
            image = self._push(manifest, ref)
            info["image"] = image
        return InferenceBuildResult(
            image, model.version, req.platforms, dict(self._steps.timings), labels
        )

    def _base(self, flavor: str) -> tuple[FlavorBase, bool]:
        """The flavour base: `--base-image` itself when it is one, else found or built."""
        req = self.request
        with RegistryClient(req.registry, tls_verify=req.tls_verify) as client:
            given = _as_flavor_base(client, req.base_image, req.registry, req.platforms)
            if given is not None:
                return given, False
            tree = self._tree or locate_flops_tree()
            spec = flavor_base_spec(
                tree, FLAVORS[flavor], registry=req.registry, base_image=req.base_image
            )
            found = find_flavor_base(spec, client, req.platforms)
        if found is not None:
            return found, False
        lock = resolve_runtime_lock(spec, settings=self._pip, work_dir=req.work_dir / "resolve")
        return self._build_base(spec, lock), True

    def _extra_requirements(self, wanted: Sequence[str], lock: Sequence[str]) -> list[str]:
        """Pinned distributions to add to the base so that `wanted` is satisfied; [] usually."""
        missing = missing_requirements(wanted, lock)
        if not missing:
            return []
        _log.info("project=%s the base lacks %s", self.request.project_id, ", ".join(missing))
        resolved = resolve_requirements(
            missing,
            constraints=[line for line in lock if " @ " not in line],
            settings=self._pip,
            work_dir=self.request.work_dir / "resolve-model",
            what="the model's requirements",
        )
        have = {line.lower() for line in lock}
        return [line for line in resolved if line.lower() not in have]

    def _prepare(self, extra: Sequence[str], context: Path) -> set[str]:
        """Install `extra` natively per platform into `prepared-<arch>/`; the arches that worked."""
        prepared: set[str] = set()
        context.mkdir(parents=True, exist_ok=True)
        if extra:
            write_lines(context / EXTRA_REQUIREMENTS_FILE, extra)
        for platform in self.request.platforms:
            arch = target_arch(platform)
            folder = context / f"prepared-{arch}"
            if extra and prepare_platform(
                extra, platform=platform, dest=folder, settings=self._pip
            ):
                (folder / PREPARED_MARKER).unlink(missing_ok=True)  # the base's marker stays
                prepared.add(arch)
            else:
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
        return prepared

    def _push(self, manifest: str, ref: str) -> str:
        req = self.request
        self._ping_registry()
        pushed = self._buildah.push_manifest(
            manifest, ref, registry=req.registry, digest_file=req.work_dir / "digest"
        )
        found = existing_images(req.registry, {INFERENCE_ROLE: ref}, req.platforms, req.tls_verify)
        if found is None:
            raise RegistryError(
                f"the registry at {req.registry} does not list {ref} for "
                f"{', '.join(req.platforms)} after the push"
            )
        if not found[INFERENCE_ROLE].endswith(pushed):
            _log.warning("project=%s registry has %s, pushed %s", req.project_id, found, pushed)
        return found[INFERENCE_ROLE]


def _as_flavor_base(
    client: RegistryClient, image: str, registry: str, platforms: Sequence[str]
) -> FlavorBase | None:
    """`image` as a flavour base when it is one in `registry` (it carries the runtime lock)."""
    try:
        host, repository, reference = split_ref(image)
    except ValueError:
        return None
    if host != client.registry:
        return None
    tag = reference if ":" not in reference else "pinned"  # `FlavorBase.ref` wants a tag ref
    return flavor_base_at(
        client, repository, reference, platforms, ref=f"{host}/{repository}:{tag}"
    )


def _flavor_of(flavors: Mapping[str, Any]) -> str:
    for mlflow_name, flavor in _MLFLOW_FLAVORS:
        if mlflow_name in flavors:
            return flavor
    raise ModelSourceError(
        f"the model's flavours ({', '.join(sorted(flavors)) or 'none'}) have no FLOps flavour "
        f"base; pass --flavor ({', '.join(FLAVORS)})"
    )


def _model_requirements(model_dir: Path) -> list[str]:
    """The model's `requirements.txt` lines (what `_install_pyfunc_deps` would install)."""
    path = model_dir / "requirements.txt"
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
