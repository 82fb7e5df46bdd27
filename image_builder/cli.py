"""`python -m image_builder build ...`: build and push a project's learner and aggregator images;
`python -m image_builder build-inference ...`: build and push a trained model's inference image.

Exit codes: 0 the images are pushed; 1 the build failed (the `failed` event and stderr say
which step and why); 2 invalid arguments. Settings from the environment are read here and
nowhere else: `FLOPS_CALLBACK_URL` / `FLOPS_CALLBACK_TOKEN` (never on the command line),
`FLOPS_REPO_URL` (instead of `--repo-url`, for URLs with credentials), `FLOPS_TRACKING_URI`
or `MLFLOW_TRACKING_URI` (instead of `--tracking-uri`, likewise), `FLOPS_REGISTRY`,
`STORAGE_DRIVER` and `BUILDAH_ISOLATION` (`vfs` and `chroot` inside the builder container),
`PIP_INDEX_URL` / `PIP_EXTRA_INDEX_URL` / `PIP_TRUSTED_HOST`, `SSL_CERT_FILE` (the CA
bundle mounted into build steps), and `FLOPS_BUILDER_CACHE_MAX_MB` (instead of `--cache-max-mb`).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import typer

from flops_core.cli_options import LogLevelOption, cli_app
from flops_core.events import EventReporter
from flops_core.image_names import image_refs, inference_image_ref, normalize_registry
from flops_core.logs import configure_logging, get_logger
from image_builder.build_job import BuildRequest, ImageBuildJob
from image_builder.buildah import Buildah, BuildahSettings
from image_builder.errors import BuildStepError
from image_builder.flavors import FLAVORS
from image_builder.inference_image import InferenceBuildRequest, InferenceImageJob
from image_builder.pip_resolver import PipSettings
from image_builder.step_job import JobResult, StepJob
from image_builder.storage_prune import MB, BuildCache

__all__ = ["app", "default_base_image"]

_log = get_logger("image_builder")

app = cli_app("Build FLOps container images from an ML repo.")

ResultT = TypeVar("ResultT", bound=JobResult)

_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")
_DEFAULT_CA = Path("/etc/ssl/certs/ca-certificates.crt")


# Options both commands take.
RegistryOption = Annotated[
    str, typer.Option(help="Registry to push to, host[:port].", envvar="FLOPS_REGISTRY")
]
PlatformsOption = Annotated[str, typer.Option(help="Comma-separated target platforms.")]
TlsVerifyOption = Annotated[
    bool | None,
    typer.Option(
        "--tls-verify/--insecure-registry",
        help="Require verified HTTPS for registries. Default: insecure for localhost and "
        "127.0.0.0/8, verified otherwise.",
        show_default=False,
    ),
]
KeepWorkDirOption = Annotated[bool, typer.Option(help="Keep the work folder afterwards.")]
CaBundleOption = Annotated[
    Path | None,
    typer.Option(
        help="CA bundle mounted into build steps. Default: $SSL_CERT_FILE, else the system bundle.",
        show_default=False,
    ),
]
CacheMaxOption = Annotated[
    int,
    typer.Option(
        min=0,
        envvar="FLOPS_BUILDER_CACHE_MAX_MB",
        help="After the build, prune Buildah's storage (the layer cache) when it takes more "
        "than this many MB (10^6 bytes): untagged images first, then the least recently "
        "built. 0: never prune.",
    ),
]


def default_base_image(registry: str) -> str:
    """The base image flavour bases start FROM when none is given: the bootstrapped Debian one."""
    return f"{normalize_registry(registry)}/flops/debian-python:bookworm"


@app.callback()
def _main() -> None:
    """Build FLOps container images from an ML repo."""


@app.command()
def build(
    repo_url: Annotated[
        str,
        typer.Option(
            help="The ML repo: URL, file:// URL or local path. Pass a URL with credentials "
            "through the environment, which `ps` does not show.",
            envvar="FLOPS_REPO_URL",
        ),
    ],
    commit: Annotated[str, typer.Option(help="The commit id to build.")],
    flavor: Annotated[str, typer.Option(help=f"ML flavour: {', '.join(FLAVORS)}.")],
    registry: RegistryOption,
    customer: Annotated[str, typer.Option(help="Customer id; names the images.")],
    project_id: Annotated[str, typer.Option(help="Project id, on every event.")],
    platforms: PlatformsOption = "linux/amd64",
    base_image: Annotated[
        str | None,
        typer.Option(
            help="Image flavour bases start FROM. Default: <registry>/flops/debian-python:"
            "bookworm (python:3.11-slim where Docker Hub is reachable).",
            show_default=False,
        ),
    ] = None,
    tls_verify: TlsVerifyOption = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="Where to put the checkout and build contexts.")
    ] = None,
    keep_work_dir: KeepWorkDirOption = False,
    ca_bundle: CaBundleOption = None,
    cache_max_mb: CacheMaxOption = 0,
    log_level: LogLevelOption = "INFO",
) -> None:
    """Clone, check, resolve, build and push the learner and aggregator images."""
    configure_logging(log_level)
    wanted = _platforms(platforms)
    _check_flavor(flavor)
    host, verify = _push_target(
        registry, tls_verify, lambda host: image_refs(host, customer, repo_url, commit)
    )
    root = Path(tempfile.mkdtemp(prefix="flops-build-", dir=work_dir))
    request = BuildRequest(
        repo_url=repo_url,
        commit=commit,
        flavor=flavor,
        platforms=wanted,
        registry=host,
        customer=customer,
        project_id=project_id,
        base_image=base_image or default_base_image(host),
        tls_verify=verify,
        work_dir=root,
    )
    result = _run_job(
        "image build",
        functools.partial(ImageBuildJob, request),
        project_id=project_id,
        root=root,
        keep_work_dir=keep_work_dir,
        verify=verify,
        ca_bundle=ca_bundle,
        cache_max_mb=cache_max_mb,
    )
    for role, ref in result.images.items():
        typer.echo(f"{role}: {ref}")
    _echo_timings(result.timings)


_TRACKING_URI_HELP = (
    "The MLflow tracking server holding the model. Pass a URI with credentials through the "
    "environment, which `ps` does not show."
)


@app.command("build-inference")
def build_inference(
    tracking_uri: Annotated[
        str,
        typer.Option(help=_TRACKING_URI_HELP, envvar=["FLOPS_TRACKING_URI", "MLFLOW_TRACKING_URI"]),
    ],
    model_uri: Annotated[
        str, typer.Option(help="The registered model, e.g. models:/flops-<project>@champion.")
    ],
    registry: RegistryOption,
    customer: Annotated[str, typer.Option(help="Customer id; names the image.")],
    project_id: Annotated[str, typer.Option(help="Project id; names the image, on every event.")],
    platforms: PlatformsOption = "linux/amd64",
    base_image: Annotated[
        str | None,
        typer.Option(
            help="A flavour base (<registry>/flops/base-<flavor>:<key>) to start FROM, or the "
            "image the flavour base is built on. Default: <registry>/flops/debian-python:bookworm.",
            show_default=False,
        ),
    ] = None,
    flavor: Annotated[
        str | None,
        typer.Option(
            help=f"ML flavour ({', '.join(FLAVORS)}). Default: from the model's MLmodel file.",
            show_default=False,
        ),
    ] = None,
    tls_verify: TlsVerifyOption = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="Where to put the model and the build context.")
    ] = None,
    keep_work_dir: KeepWorkDirOption = False,
    ca_bundle: CaBundleOption = None,
    cache_max_mb: CacheMaxOption = 0,
    log_level: LogLevelOption = "INFO",
) -> None:
    """Build and push the inference-server image of a registered MLflow model version.

    The image is <registry>/<customer>/<project-id>/inference:<model version>, serving the
    model with `mlflow models serve` on port 8080 (POST /invocations, GET /ping).
    """
    configure_logging(log_level)
    wanted = _platforms(platforms)
    if flavor is not None:
        _check_flavor(flavor)
    host, verify = _push_target(
        registry, tls_verify, lambda host: inference_image_ref(host, customer, project_id, "1")
    )
    root = Path(tempfile.mkdtemp(prefix="flops-inference-", dir=work_dir))
    request = InferenceBuildRequest(
        tracking_uri=tracking_uri,
        model_uri=model_uri,
        platforms=wanted,
        registry=host,
        customer=customer,
        project_id=project_id,
        base_image=base_image or default_base_image(host),
        flavor=flavor,
        tls_verify=verify,
        work_dir=root,
    )
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a line per file
    mlflow_environ = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    result = _run_job(
        "inference image build",
        functools.partial(InferenceImageJob, request, mlflow_environ=mlflow_environ),
        project_id=project_id,
        root=root,
        keep_work_dir=keep_work_dir,
        verify=verify,
        ca_bundle=ca_bundle,
        cache_max_mb=cache_max_mb,
    )
    typer.echo(f"inference: {result.image}")
    _echo_timings(result.timings)


def _run_job(
    what: str,
    make_job: Callable[..., StepJob[Any, ResultT]],
    *,
    project_id: str,
    root: Path,
    keep_work_dir: bool,
    verify: bool,
    ca_bundle: Path | None,
    cache_max_mb: int,
) -> ResultT:
    """Make the job with `make_job(reporter=, buildah=, pip_settings=, cache=)` and run it."""
    reporter = _reporter(project_id)
    with _job_scope(what, root, keep_work_dir, reporter):
        buildah = _buildah(root, verify, ca_bundle)
        job = make_job(
            reporter=reporter,
            buildah=buildah,
            pip_settings=PipSettings.from_environ(os.environ),
            cache=_cache(buildah, cache_max_mb, reporter, project_id),
        )
        result = job.run()
    return result


@contextlib.contextmanager
def _job_scope(
    what: str, root: Path, keep_work_dir: bool, reporter: EventReporter
) -> Iterator[None]:
    """Run a build job: SIGTERM ends it cleanly and a failed step exits 1 saying why.

    Afterwards the reporter is closed and the work folder removed (unless kept).
    """
    previous_handler = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        yield
    except BuildStepError as e:
        typer.echo(f"{what} failed at step {e.step}: {e.reason}", err=True)
        for line in e.output:
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(1) from None
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        reporter.close()
        if keep_work_dir:
            typer.echo(f"work folder kept: {root}", err=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


def _check_flavor(flavor: str) -> None:
    if flavor not in FLAVORS:
        raise typer.BadParameter(
            f"{flavor!r}: expected one of {', '.join(FLAVORS)}", param_hint="--flavor"
        )


def _push_target(
    registry: str, tls_verify: bool | None, check_names: Callable[[str], object]
) -> tuple[str, bool]:
    """The registry as `host[:port]` and whether it needs verified HTTPS.

    `check_names(host)` raises `ValueError` when the images' names would be invalid there.
    """
    try:
        host = normalize_registry(registry)
        check_names(host)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    return host, tls_verify if tls_verify is not None else not _is_loopback(host)


def _echo_timings(timings: Mapping[str, float]) -> None:
    text = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items())
    typer.echo(f"timings: {text}", err=True)


def _platforms(platforms: str) -> tuple[str, ...]:
    wanted = tuple(p.strip().lower() for p in platforms.split(",") if p.strip())
    if not wanted or not all(_PLATFORM.match(p) for p in wanted):
        raise typer.BadParameter(
            f"{platforms!r}: expected e.g. linux/amd64,linux/arm64", param_hint="--platforms"
        )
    return wanted


def _buildah(root: Path, verify: bool, ca_bundle: Path | None) -> Buildah:
    env = os.environ
    return Buildah(
        BuildahSettings(
            storage_driver=env.get("STORAGE_DRIVER") or None,
            isolation=env.get("BUILDAH_ISOLATION") or None,
            tls_verify=verify,
            ca_bundle=_ca_bundle(ca_bundle, env.get("SSL_CERT_FILE")),
        ),
        log_file=root / "buildah.log",
        on_line=lambda line: _log.debug("buildah: %s", line),
    )


def _cache(buildah: Buildah, max_mb: int, reporter: EventReporter, project_id: str) -> BuildCache:
    return BuildCache(buildah, max_bytes=max_mb * MB, reporter=reporter, project_id=project_id)


def _reporter(project_id: str) -> EventReporter:
    return EventReporter(
        project_id=project_id,
        source="builder",
        callback_url=os.environ.get("FLOPS_CALLBACK_URL") or None,
        callback_token=os.environ.get("FLOPS_CALLBACK_TOKEN") or None,
    )


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _ca_bundle(option: Path | None, ssl_cert_file: str | None) -> Path | None:
    if option is not None:
        if not option.is_file():
            raise typer.BadParameter(f"{option} is not a file", param_hint="--ca-bundle")
        return option.absolute()
    for candidate in (Path(ssl_cert_file) if ssl_cert_file else None, _DEFAULT_CA):
        if candidate is not None and candidate.is_file():
            return candidate.absolute()
    return None


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    # Raise in the main thread so that running Buildah processes are killed and reported.
    sys.exit(128 + signum)
