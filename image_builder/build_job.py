"""One image build: from a repo URL at a commit to pushed learner and aggregator images.

Design. The job is a fixed sequence of steps, each timed and reported as a `step_completed`
event, so the manager can show where a build spends its time and where it failed:
`clone` the repo at the commit; `check` it against the ML-repo contract; `resolve` the
repo's dependencies natively with pip against the flavour base's pinned runtime (read from
the base in the registry, or resolved when the base does not exist yet), which fails in
seconds with pip's explanation; make sure the flavour `base` exists for every platform
(build and push it once, minutes); `render` the two Containerfiles and stage their build
context; `build` both images for all platforms with Buildah's layer cache; `push` the
manifest lists and read back their digests. A failing step ends the job with a `failed`
event naming the step, a reason a user can act on, and the relevant output lines. Before
that last event, after a push or a failed step, Buildah's storage is pruned to the cache
limit (`storage_prune`), reported as `cache_pruned`.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from flops_core.flops_tree import FlopsTree, locate_flops_tree
from flops_core.image_names import IMAGE_ROLES, image_refs
from flops_core.logs import get_logger
from flops_core.redact import redact_url
from flops_core.registry_client import RegistryClient, existing_images
from flops_core.repo_checker import RepoReport
from image_builder.build_context import stage_project_context
from image_builder.build_request import STEPS, BuildRequest, BuildResult
from image_builder.dependency_lock import DependencyLock, lock_repo_dependencies
from image_builder.errors import RegistryError
from image_builder.flavor_base import (
    FlavorBase,
    find_flavor_base,
    flavor_base_spec,
    resolve_runtime_lock,
)
from image_builder.flavors import FLAVORS
from image_builder.project_containerfile import image_labels, render_project_containerfile
from image_builder.repo_source import check_checkout, fetch_repo_at
from image_builder.step_job import StepJob

__all__ = ["STEPS", "BuildRequest", "BuildResult", "ImageBuildJob"]

_log = get_logger("image_builder")


class ImageBuildJob(StepJob[BuildRequest, BuildResult]):
    """Runs the steps of one project build and reports them; parameters as `StepJob`'s."""

    first_step = STEPS[0]

    def _started_fields(self) -> dict[str, Any]:
        req = self.request
        return {
            "repo_url": redact_url(req.repo_url),
            "commit": req.commit,
            "flavor": req.flavor,
            "platforms": list(req.platforms),
        }

    def _succeeded_fields(self, result: BuildResult) -> dict[str, Any]:
        return {"images": result.images}

    def _run_steps(self) -> BuildResult:
        req = self.request
        work = req.work_dir
        step = self._steps.step
        with step("clone") as info:
            commit = fetch_repo_at(req.repo_url, req.commit, work / "repo")
            info["commit"] = commit
        with step("check") as info:
            report = check_checkout(work / "repo")
            info["warnings"] = list(report.warnings)
        with step("resolve") as info:
            tree = self._tree or locate_flops_tree()
            spec = flavor_base_spec(
                tree, FLAVORS[req.flavor], registry=req.registry, base_image=req.base_image
            )
            with RegistryClient(req.registry, tls_verify=req.tls_verify) as client:
                base = find_flavor_base(spec, client, req.platforms)
            runtime_lock = (
                base.lock
                if base
                else resolve_runtime_lock(spec, settings=self._pip, work_dir=work / "resolve-base")
            )
            lock = self._lock(report, runtime_lock, tree)
            info.update(_lock_info(lock, report), base_exists=base is not None)
        with step("base") as info:
            built = base is None
            base = base or self._build_base(spec, runtime_lock)
            info.update(image=base.pinned_ref, built=built)
        with step("render"):
            refs = image_refs(req.registry, req.customer, req.repo_url, commit)
            containerfiles = self._render(base, commit, tree, lock)
        with step("build") as info:
            cached = 0
            for role in IMAGE_ROLES:
                manifest = self._new_manifest(f"flops-{role}-{uuid.uuid4().hex[:12]}")
                output = self._buildah.build(
                    containerfile=containerfiles[role],
                    context=work / "context",
                    manifest=manifest,
                    platforms=req.platforms,
                    volumes=self._pip_volumes(),
                    pull="false",
                )
                cached += output.cached_steps
            info["cached_steps"] = cached
        with step("push") as info:
            images = self._push(refs)
            info["images"] = images
        return BuildResult(images, req.platforms, dict(self._steps.timings))

    def _lock(
        self, report: RepoReport, runtime_lock: tuple[str, ...], tree: FlopsTree
    ) -> DependencyLock:
        assert report.dependencies is not None  # a report without them is not ok
        return lock_repo_dependencies(
            report.dependencies,
            runtime_lock=runtime_lock,
            flops_version=tree.version,
            settings=self._pip,
            work_dir=self.request.work_dir / "resolve-repo",
        )

    def _render(
        self, base: FlavorBase, commit: str, tree: FlopsTree, lock: DependencyLock
    ) -> dict[str, Path]:
        req = self.request
        stage_project_context(
            req.work_dir / "context",
            repo_dir=req.work_dir / "repo",
            runtime_dirs=tree.package_dirs(),
            lock=lock.requirements,
        )
        labels = image_labels(
            source=redact_url(req.repo_url),
            revision=commit,
            version=tree.version,
            flavor=req.flavor,
            runtime=tree.runtime_fingerprint(),
        )
        paths: dict[str, Path] = {}
        for role in IMAGE_ROLES:
            path = req.work_dir / f"Containerfile.{role}"
            path.write_text(
                render_project_containerfile(
                    base=base.pinned_ref,
                    role=role,
                    labels=labels,
                    install_requirements=bool(lock.requirements),
                ),
                encoding="utf-8",
            )
            paths[role] = path
        return paths

    def _push(self, refs: dict[str, str]) -> dict[str, str]:
        req = self.request
        self._ping_registry()
        pushed: dict[str, str] = {}
        for role, manifest in zip(IMAGE_ROLES, self._manifests, strict=True):
            digest_file = req.work_dir / f"digest.{role}"
            pushed[role] = self._buildah.push_manifest(
                manifest, refs[role], registry=req.registry, digest_file=digest_file
            )
        found = existing_images(req.registry, refs, req.platforms, req.tls_verify)
        if found is None:
            raise RegistryError(
                f"the registry at {req.registry} does not list every pushed image for "
                f"{', '.join(req.platforms)} after the push"
            )
        for role, ref in found.items():
            if not ref.endswith(pushed[role]):
                _log.warning(
                    "project=%s %s: registry has %s, pushed %s",
                    req.project_id,
                    role,
                    ref,
                    pushed[role],
                )
        return found


def _lock_info(lock: DependencyLock, report: RepoReport) -> dict[str, Any]:
    return {
        "dependency_file": report.dependencies.source_file if report.dependencies else None,
        "packages": list(lock.requirements),
        "overrides": [str(o) for o in lock.overrides],
        "warnings": list(lock.warnings),
    }
