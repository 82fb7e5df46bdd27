"""Image build time and size: the FLOps image builder against a naive single-stage Containerfile.

    .venv/bin/python bench/image_build.py [--platforms linux/amd64] [--repeats 1] [--base-pulled]

Both build the learner image of `examples/sklearn-digits` (a temporary Git repo, `file://`)
with Buildah (`--layers`) into a private storage (vfs, or `--storage-driver overlay`), and
push it to a private namespace `bench-<random>/` of the local registry; the storage and the
pushed manifests are deleted at the end. Each run:

- FLOps (`ImageBuildJob`, in this process, as `python -m image_builder build` runs it):
  a cold build (empty storage, no flavour base: it is built and pushed), then a warm rebuild
  after a commit that changes only `model_manager.py`; with `--base-pulled` also a cold build
  with the flavour base already in the registry (empty storage again, so the base is pulled).
  The job always builds and pushes the learner and the aggregator; its seconds cover every
  step, from the clone to the push of both images.
- naive (the baseline, ratio 1.00): `FROM` the same Debian Python image, `COPY . /app`, one
  `RUN` making a venv and pip-installing the learner's runtime pins, scikit-learn and the
  repo's requirements.txt, `COPY` of the FLOps runtime packages, `CMD`: cold (empty
  storage), then warm after the same change. Its seconds are `buildah build` plus the push.

The builder has no option for where flavour bases live (`<registry>/flops/base-<flavor>`,
shared by everyone using the registry), so the script redirects that name to its own
namespace: the cold build then really builds the base, and nothing is pushed outside it.
Host-side pip (the builder's resolve and wheel preparation) starts from an empty cache, as
in a fresh builder container. Besides the table, the script prints the seconds of every
Containerfile step (from Buildah's output as it streams). Under `--platforms
linux/amd64,linux/arm64` the naive build runs pip under qemu emulation for arm64 (many
minutes per build); FLOps installs the arm64 wheels natively.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import mkdtemp
from types import FrameType
from typing import Any
from unittest import mock

import httpx
from _common import ROOT, median

from flops_core.commands import run_command
from flops_core.events import EventReporter
from flops_core.flops_tree import RUNTIME_PACKAGES, locate_flops_tree
from flops_core.image_names import normalize_registry
from flops_core.logs import configure_logging
from flops_core.registry_client import MANIFEST_ACCEPT, RegistryClient, split_ref
from image_builder import flavor_base
from image_builder.build_job import BuildRequest, ImageBuildJob
from image_builder.buildah import CA_BUNDLE_TARGET, Buildah, BuildahSettings, BuildOutput
from image_builder.cli import default_base_image
from image_builder.flavors import FLAVORS
from image_builder.pip_resolver import PipSettings

EXAMPLE = ROOT / "examples" / "sklearn-digits"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MB = 1_000_000
_IDENTITY = ("-c", "user.name=bench", "-c", "user.email=bench@bench.invalid")
_STEP = re.compile(r"STEP \d+/\d+: (\w+)")

NAIVE_CONTAINERFILE = """\
FROM {base}
COPY . /app
RUN python3 -m venv /opt/venv \\
 && PIP_CERT={ca} /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \\
      --progress-bar off {pins} -r /app/requirements.txt
COPY --from=flops . /opt/flops/runtime/
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/opt/flops/runtime
WORKDIR /app
CMD ["python", "-m", "flops_learner"]
"""


@dataclass
class Steps:
    """The steps of one `buildah build`, over its platforms: cache hits and each one's time."""

    cached: int
    total: int  # without FROM
    seconds: list[tuple[str, float]]  # instruction, seconds to the next step (FROM included)

    @classmethod
    def of(cls, lines: Sequence[tuple[float, str]], end: float) -> Steps:
        """Read Buildah's timestamped output lines; `end` is when the build returned."""
        starts = [(t, m.group(1)) for t, line in lines if (m := _STEP.search(line))]
        ends = [t for t, _ in starts[1:]] + [end]
        seconds = [(name, e - t) for (t, name), e in zip(starts, ends, strict=True)]
        cached = sum("Using cache" in line for _, line in lines)
        return cls(cached, sum(name != "FROM" for name, _ in seconds), seconds)


@dataclass
class Build:
    """One timed build of the learner image (FLOps: of both images, and maybe the base)."""

    seconds: float
    learner: str  # <ref>@<digest of the manifest list>
    parts: dict[str, float]  # FLOps: the job's step timings; naive: build and push
    images: dict[str, Steps]  # learner, aggregator, base: what Buildah built


@dataclass
class Sizes:
    """A learner image's size per platform in bytes, and the part of it that is Debian's."""

    uncompressed: dict[str, int]
    compressed: dict[str, int]
    debian_uncompressed: dict[str, int]
    debian_compressed: dict[str, int]
    layers: dict[str, int]
    added: dict[str, int] = field(default_factory=dict)  # by the warm rebuild, compressed


class Storage:
    """A private Buildah storage under `root`, selected by `CONTAINERS_STORAGE_CONF`."""

    def __init__(self, root: Path, driver: str) -> None:
        self.root = root
        self.driver = driver
        root.mkdir(parents=True)
        self.conf = root / "storage.conf"
        self.conf.write_text(
            f'[storage]\ndriver = "{driver}"\ngraphroot = "{root / "graph"}"\n'
            f'runroot = "{root / "run"}"\n'
        )

    def env(self) -> dict[str, str]:
        """This process's environment with the private storage."""
        return {**os.environ, "CONTAINERS_STORAGE_CONF": str(self.conf)}

    def buildah(self, *args: str, timeout: float = 600.0) -> str:
        """Run `buildah <args>` on this storage; return its output."""
        result = subprocess.run(
            ["buildah", "--storage-driver", self.driver, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"buildah {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def wipe(self) -> None:
        """Remove every container, image and layer: the next build starts cold."""
        for args in (["rm", "--all"], ["rmi", "--all", "--force"]):
            subprocess.run(
                ["buildah", "--storage-driver", self.driver, *args],
                env=self.env(),
                capture_output=True,
                timeout=600,
            )
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(f"{self.root}/")), reverse=True):
            subprocess.run(["umount", mount], capture_output=True, timeout=60)  # overlay's
        for folder in ("graph", "run"):
            shutil.rmtree(self.root / folder, ignore_errors=True)


class RecordingBuildah(Buildah):
    """The image builder's Buildah adapter, keeping each build's output for the report."""

    def __init__(self, settings: BuildahSettings, log_file: Path) -> None:
        super().__init__(settings, log_file=log_file, on_line=self._record)
        self.images: dict[str, Steps] = {}
        self._lines: list[tuple[float, str]] = []

    def _record(self, line: str) -> None:
        self._lines.append((time.monotonic(), line))

    def build(self, **kwargs: Any) -> BuildOutput:
        self._lines = []
        output = super().build(**kwargs)
        name = kwargs["containerfile"].name  # Containerfile.<role> or flavor.Containerfile
        role = name.split(".")[1] if name.startswith("Containerfile.") else "base"
        self.images[role] = Steps.of(self._lines, time.monotonic())
        return output


@dataclass
class Bench:
    """What every build of one benchmark run shares."""

    workdir: Path
    storage: Storage
    registry: str
    namespace: str  # bench-<random>: every pushed image is under it
    platforms: tuple[str, ...]
    base_image: str
    settings: BuildahSettings
    repo: Path
    runtime: Path  # the FLOps runtime packages, the naive build's second context

    def base_repository(self, registry: str, flavor: str) -> str:
        """Where flavour bases go in this benchmark (the builder uses `<registry>/flops/`)."""
        return f"{normalize_registry(registry)}/{self.namespace}/base-{flavor}"


def make_repo(workdir: Path) -> tuple[Path, str]:
    """A Git copy of `examples/sklearn-digits`; return its path and its commit."""
    repo = workdir / "sklearn-digits"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__"))
    _git(repo, "init", "-q")
    return repo, commit_all(repo, "example")


def change_model_manager(repo: Path, tag: str) -> str:
    """Commit a change to `model_manager.py` only; return the new commit."""
    path = repo / "model_manager.py"
    path.write_text(path.read_text() + f"\n# tuned ({tag})\n")
    return commit_all(repo, f"tune {tag}")


def commit_all(repo: Path, message: str) -> str:
    """Commit everything in `repo`; return the commit id."""
    _git(repo, "add", "-A")
    _git(repo, *_IDENTITY, "commit", "-qm", message)
    return _git(repo, "rev-parse", "HEAD").strip()


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def run_flops(bench: Bench, commit: str, label: str) -> Build:
    """One `ImageBuildJob` of `commit` (learner and aggregator), timed from clone to push."""
    work = bench.workdir / f"flops-{label}"
    (work / "job").mkdir(parents=True)
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")  # an empty pip cache on the host side
    buildah = RecordingBuildah(bench.settings, log_file=work / "buildah.log")
    request = BuildRequest(
        repo_url=bench.repo.as_uri(),
        commit=commit,
        flavor="sklearn",
        platforms=bench.platforms,
        registry=bench.registry,
        customer=bench.namespace,
        project_id=f"{bench.namespace}-{label}",
        base_image=bench.base_image,
        tls_verify=False,
        work_dir=work / "job",
    )
    reporter = EventReporter(project_id=request.project_id, source="bench", callback_url=None)
    job = ImageBuildJob(
        request,
        reporter=reporter,
        buildah=buildah,
        pip_settings=PipSettings.from_environ(os.environ),
    )
    started = time.monotonic()
    try:
        with mock.patch.object(flavor_base, "flavor_base_repository", bench.base_repository):
            result = job.run()
    except Exception as e:
        raise RuntimeError(f"FLOps build {label} failed: {e} (log {work / 'buildah.log'})") from e
    finally:
        reporter.close()
    seconds = time.monotonic() - started
    return Build(seconds, result.images["learner"], result.timings, buildah.images)


def run_naive(bench: Bench, commit: str, label: str) -> Build:
    """Build `commit` with the naive Containerfile and push it; build and push are timed."""
    work = bench.workdir / f"naive-{label}"
    context = work / "context"
    context.mkdir(parents=True)
    _git(bench.repo, "archive", "-o", str(work / "repo.tar"), commit)
    shutil.unpack_archive(work / "repo.tar", context)
    pins = FLAVORS["sklearn"].requirements(locate_flops_tree())
    containerfile = work / "Containerfile"
    containerfile.write_text(
        NAIVE_CONTAINERFILE.format(
            base=bench.base_image, ca=CA_BUNDLE_TARGET, pins=shlex.join(pins)
        )
    )
    manifest = f"naive-{uuid.uuid4().hex[:12]}"
    command = [
        *("buildah", "--storage-driver", bench.storage.driver, "build", "--layers=true"),
        *("--network", "host"),
        *("--pull=true", "--platform", ",".join(bench.platforms), "--manifest", manifest),
        *("-f", str(containerfile), "--tls-verify=false"),
        *("--build-context", f"flops={bench.runtime}", "-v", f"{CA_BUNDLE}:{CA_BUNDLE_TARGET}:ro"),
    ]
    if bench.settings.isolation:
        command += ["--isolation", bench.settings.isolation]
    log = work / "buildah.log"
    adapter = Buildah(bench.settings, log_file=log)
    ref = f"{bench.registry}/{bench.namespace}/naive/learner:{commit}"
    lines: list[tuple[float, str]] = []
    started = time.monotonic()
    try:
        built = run_command(
            [*command, str(context)],
            timeout=7200,
            on_line=lambda line: lines.append((time.monotonic(), line)),
            log_file=log,
            env=bench.storage.env(),
        )
        if built.returncode != 0:
            raise RuntimeError(f"naive build {label} failed (log {log}):\n" + built.tail())
        build_seconds = time.monotonic() - started
        steps = Steps.of(lines, time.monotonic())
        digest = adapter.push_manifest(
            manifest, ref, registry=bench.registry, digest_file=work / "digest"
        )
    finally:
        adapter.remove_manifest(manifest)
    seconds = time.monotonic() - started
    parts = {"build": build_seconds, "push": seconds - build_seconds}
    return Build(seconds, f"{ref}@{digest}", parts, {"learner": steps})


def image_sizes(bench: Bench, ref: str) -> Sizes:
    """Sizes of `ref` per platform: uncompressed from the local image, compressed as pushed.

    The local image must be one built in the private storage: Buildah records its layers
    uncompressed, so their sizes are the unpacked sizes. The first layers are the Debian
    Python image's, whose count is read from the registry.
    """
    sizes = Sizes({}, {}, {}, {}, {})
    for platform in bench.platforms:
        pushed = _platform_manifest(bench.registry, ref, platform)
        debian = _platform_manifest(bench.registry, bench.base_image, platform)
        inspect = json.loads(
            bench.storage.buildah("inspect", "--type", "image", pushed["config"]["digest"][7:])
        )
        local = json.loads(inspect["Manifest"])
        if not all(layer["mediaType"].endswith(".tar") for layer in local["layers"]):
            raise RuntimeError(f"{ref} ({platform}) is not a locally built image")
        count = len(debian["layers"])
        sizes.uncompressed[platform] = _total(local["layers"]) + local["config"]["size"]
        sizes.compressed[platform] = _total(pushed["layers"]) + pushed["config"]["size"]
        sizes.debian_uncompressed[platform] = _total(local["layers"][:count])
        sizes.debian_compressed[platform] = _total(debian["layers"])
        sizes.layers[platform] = len(pushed["layers"])
    return sizes


def _total(layers: Sequence[dict[str, Any]]) -> int:
    return sum(int(layer["size"]) for layer in layers)


def _platform_manifest(registry: str, ref: str, platform: str) -> dict[str, Any]:
    _, repository, reference = split_ref(ref)
    with RegistryClient(registry, tls_verify=False) as client:
        info = client.manifest(repository, reference)
    digest = info.platform_digest(platform) if info else None
    if digest is None:
        raise RuntimeError(f"{ref} has no {platform} image in the registry")
    response = httpx.get(
        f"http://{registry}/v2/{repository}/manifests/{digest}",
        headers={"Accept": MANIFEST_ACCEPT},
        timeout=30,
    )
    response.raise_for_status()
    return dict(response.json())


def added_bytes(bench: Bench, before: str, after: str) -> dict[str, int]:
    """Compressed bytes of the layers and config of `after` that `before` lacks, per platform."""
    added: dict[str, int] = {}
    for platform in bench.platforms:
        old = _platform_manifest(bench.registry, before, platform)
        new = _platform_manifest(bench.registry, after, platform)
        known = {layer["digest"] for layer in old["layers"]}
        layers = [layer for layer in new["layers"] if layer["digest"] not in known]
        added[platform] = _total(layers) + new["config"]["size"]
    return added


def smoke_check(bench: Bench, ref: str) -> None:
    """Check that the learner image imports the runtime and the user's ModelManager."""
    config = _platform_manifest(bench.registry, ref, bench.platforms[0])["config"]["digest"]
    container = bench.storage.buildah("from", "--pull=false", config[7:]).strip()
    try:
        bench.storage.buildah(
            "run", "--network", "host", container, "--",
            "python", "-c", "import flops_learner, model_manager",
        )  # fmt: skip
    finally:
        bench.storage.buildah("rm", container)


def delete_images(registry: str, prefix: str) -> int:
    """Delete every manifest, and the blob links, of the repositories at or below `prefix`.

    Returns how many manifests were deleted. The blobs' data stays in the registry until
    its garbage collection runs, which is not this script's to start.
    """
    deleted = 0
    with httpx.Client(base_url=f"http://{registry}", timeout=60) as http:
        for repository in _repositories(http, prefix):
            tags = http.get(f"/v2/{repository}/tags/list").json().get("tags") or []
            manifests: set[str] = set()
            blobs: set[str] = set()
            todo = list(tags)
            while todo:
                response = http.get(
                    f"/v2/{repository}/manifests/{todo.pop()}", headers={"Accept": MANIFEST_ACCEPT}
                )
                if response.status_code != 200:
                    continue
                manifests.add(response.headers["Docker-Content-Digest"])
                data = response.json()
                todo += [m["digest"] for m in data.get("manifests", [])]
                blobs |= {b["digest"] for b in [data.get("config"), *data.get("layers", [])] if b}
            for digest in manifests:
                deleted += http.delete(f"/v2/{repository}/manifests/{digest}").status_code == 202
            for digest in blobs:
                http.delete(f"/v2/{repository}/blobs/{digest}")
    return deleted


def _repositories(http: httpx.Client, prefix: str) -> list[str]:
    found: list[str] = []
    url: str | None = "/v2/_catalog?n=1000"
    while url:
        response = http.get(url)
        response.raise_for_status()
        names = response.json().get("repositories") or []
        found += [r for r in names if r == prefix or r.startswith(f"{prefix}/")]
        url = response.links.get("next", {}).get("url")
    return found


def benchmark(args: argparse.Namespace, workdir: Path) -> None:
    """Run every build `--repeats` times, alternating which side goes first, and report."""
    started = time.monotonic()
    registry = normalize_registry(args.registry)
    repo, first = make_repo(workdir)
    runtime = workdir / "flops-runtime"
    for package in RUNTIME_PACKAGES:
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / package, runtime / package, ignore=ignore)
    storage = Storage(workdir / "storage", args.storage_driver)
    bench = Bench(
        workdir=workdir,
        storage=storage,
        registry=registry,
        namespace=args.namespace,
        platforms=tuple(p.strip() for p in args.platforms.split(",") if p.strip()),
        base_image=args.base_image or default_base_image(registry),
        settings=BuildahSettings(
            storage_driver=args.storage_driver,
            isolation=os.environ.get("BUILDAH_ISOLATION") or None,
            tls_verify=False,
            ca_bundle=CA_BUNDLE,
            environment=storage.env(),
        ),
        repo=repo,
        runtime=runtime,
    )
    free = shutil.disk_usage(workdir).free / 1e9
    print(f"{args.storage_driver} storage and logs in {workdir} ({free:.0f} GB free)")
    print(f"pushing under {registry}/{bench.namespace}/ for {', '.join(bench.platforms)}")
    runs: dict[str, list[Build]] = {}
    sizes: dict[str, Sizes] = {}

    def build(kind: str, run: int, commit: str, builder: Callable[..., Build]) -> Build:
        print(f"run {run}: {kind} ...", end=" ", flush=True)
        result = builder(bench, commit, f"{kind.replace(' ', '-')}-{run}")
        runs.setdefault(kind, []).append(result)
        parts = ", ".join(f"{part} {s:.1f}" for part, s in result.parts.items())
        print(f"{result.seconds:.1f} s ({parts})", flush=True)
        return result

    def flops(run: int, commit: str) -> None:
        storage.wipe()
        cold = build("FLOps cold", run, first, run_flops)
        if "base" not in cold.images:
            raise RuntimeError(f"the cold build found a flavour base under {bench.namespace}/")
        if run == 1:
            sizes["FLOps"] = image_sizes(bench, cold.learner)
            smoke_check(bench, cold.learner)
        warm = build("FLOps warm", run, commit, run_flops)
        if run == 1:
            sizes["FLOps"].added.update(added_bytes(bench, cold.learner, warm.learner))
        storage.wipe()
        if args.base_pulled:
            delete_images(registry, f"{bench.namespace}/{repo.name}")  # the base stays
            build("FLOps base pulled", run, first, run_flops)
            storage.wipe()

    def naive(run: int, commit: str) -> None:
        storage.wipe()
        cold = build("naive cold", run, first, run_naive)
        if run == 1:
            sizes["naive"] = image_sizes(bench, cold.learner)
            smoke_check(bench, cold.learner)
        warm = build("naive warm", run, commit, run_naive)
        if run == 1:
            sizes["naive"].added.update(added_bytes(bench, cold.learner, warm.learner))
        storage.wipe()

    for run in range(1, args.repeats + 1):
        delete_images(registry, bench.namespace)  # nothing of an earlier run in the registry
        commit = change_model_manager(repo, str(run))
        for phase in (flops, naive) if run % 2 else (naive, flops):
            phase(run, commit)
    _report(bench, runs, sizes, time.monotonic() - started)


WARM = ("FLOps warm", "naive warm")


def _report(
    bench: Bench, runs: dict[str, list[Build]], sizes: dict[str, Sizes], elapsed: float
) -> None:
    def seconds(kind: str) -> float:
        return median([b.seconds for b in runs[kind]])

    print(
        f"\nsklearn-digits learner image, {', '.join(bench.platforms)}, Buildah --layers, "
        f"{bench.storage.driver}; "
        f"{len(runs['naive cold'])} run(s), medians; ratio = FLOps/naive"
    )
    print(f"{'':<56}{'FLOps':>9}{'naive':>9}{'ratio':>7}")
    rows = [("cold build s (empty storage, flavour base built)", "FLOps cold", "naive cold")]
    if "FLOps base pulled" in runs:
        rows.append(
            ("cold build s (empty storage, base pulled)", "FLOps base pulled", "naive cold")
        )
    rows.append(("warm rebuild s (commit changing model_manager.py)", "FLOps warm", "naive warm"))
    for name, ours, theirs in rows:
        a, b = seconds(ours), seconds(theirs)
        print(f"{name:<56}{a:>9.1f}{b:>9.1f}{a / b:>7.2f}")
    for platform in bench.platforms:
        for name, attr in (
            ("image MB uncompressed", "uncompressed"),
            ("image MB compressed, pushed", "compressed"),
            ("MB the warm rebuild added to the registry", "added"),
        ):
            a, b = (getattr(sizes[side], attr)[platform] / MB for side in ("FLOps", "naive"))
            digits = 3 if attr == "added" else 1
            print(f"{f'{name} ({platform})':<56}{a:>9.{digits}f}{b:>9.{digits}f}{a / b:>7.2f}")
    learner = ["{0.cached}/{0.total}".format(runs[k][0].images["learner"]) for k in WARM]
    print(f"{'warm rebuild: learner steps from the cache / all':<56}{learner[0]:>9}{learner[1]:>9}")
    for platform in bench.platforms:
        flops, naive = sizes["FLOps"], sizes["naive"]
        print(
            f"both start FROM the Debian Python image ({platform}): "
            f"{flops.debian_uncompressed[platform] / MB:.1f} MB uncompressed, "
            f"{flops.debian_compressed[platform] / MB:.1f} MB compressed; layers in all: "
            f"FLOps {flops.layers[platform]}, naive {naive.layers[platform]}"
        )
    print("seconds per part (FLOps: the job's steps, clone to push of learner and aggregator):")
    for kind, builds in runs.items():
        detail = ", ".join(
            f"{part} {median([b.parts[part] for b in builds]):.1f}" for part in builds[0].parts
        )
        print(f"  {kind + ':':<19}{detail}")
    print("seconds per Containerfile step (first run; cached steps / steps after FROM):")
    for kind, builds in runs.items():
        for role, steps in builds[0].images.items():
            detail = ", ".join(f"{name} {sec:.1f}" for name, sec in steps.seconds)
            print(f"  {f'{kind} {role}:':<30}{detail} ({steps.cached}/{steps.total})")
    print(f"total benchmark time: {elapsed:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="One run takes about 11 minutes with the defaults (vfs: cold builds take minutes "
        "each), about 4 with --storage-driver overlay.",
    )
    parser.add_argument(
        "--platforms",
        default="linux/amd64",
        help="comma-separated; with linux/arm64 the naive build runs pip under qemu "
        "emulation, which takes many minutes per build (FLOps prepares arm64 wheels natively)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs of every build")
    parser.add_argument(
        "--base-pulled",
        action="store_true",
        help="also a FLOps cold build with the flavour base in the registry (about 4 minutes)",
    )
    parser.add_argument(
        "--storage-driver",
        choices=("vfs", "overlay"),
        default="vfs",
        help="Buildah storage for both sides: vfs (a full copy per layer; up to about 8 GB of "
        "disk) or overlay (what the builder container uses by default)",
    )
    parser.add_argument("--registry", default="127.0.0.1:5050", help="plain-HTTP registry")
    parser.add_argument(
        "--base-image",
        help="what both start FROM (default <registry>/flops/debian-python:bookworm)",
    )
    args = parser.parse_args()
    args.namespace = f"bench-{uuid.uuid4().hex[:8]}"
    configure_logging("WARNING")

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):  # Buildah is killed, the cleanup runs
        signal.signal(signum, interrupted)
    workdir = Path(mkdtemp(prefix="flops-bench-images-"))
    failed = True
    try:
        benchmark(args, workdir)
        failed = False
    except KeyboardInterrupt:
        print(f"\ninterrupted; logs in {workdir}", file=sys.stderr)
    except RuntimeError as e:
        print(f"\nerror: {e}\nlogs in {workdir}", file=sys.stderr)
    finally:
        deleted = delete_images(normalize_registry(args.registry), args.namespace)
        print(f"deleted {deleted} manifests under {args.namespace}/ from the registry")
        shutil.rmtree(workdir / "storage", ignore_errors=True)
        if not failed:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
