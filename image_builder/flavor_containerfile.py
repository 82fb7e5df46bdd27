"""The flavour base's Containerfile, kept with the code that builds it.

It is Python rather than a file under `base_images/` because the builder image installs
FLOps as a wheel, which carries only Python modules. `build_flavor_base` writes it next
to the build context. To build a base by hand, write `FLAVOR_CONTAINERFILE` to a file and,
in a folder holding `flops-runtime.lock` and empty `prepared-amd64/` and `prepared-arm64/`
folders, run::

    buildah build --layers=false --network host --platform linux/amd64,linux/arm64 \\
      --build-arg BASE_IMAGE=127.0.0.1:5050/flops/debian-python:bookworm \\
      --build-arg FLAVOR=sklearn --manifest base-sklearn \\
      -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \\
      -f flavor.Containerfile .

`BASE_IMAGE` needs python3 (3.11, what the runtime is pinned for) with the venv module and
glibc 2.36 or newer (Debian bookworm): the image `base_images/bootstrap-base.sh` makes, or
`python:3.11-slim` where Docker Hub is reachable. RUN steps need the network; the builder
passes `--network host` and mounts the host's CA bundle over the image's, so that a
TLS-intercepting proxy is trusted. For the pytorch flavour the lock pins torch's CPU-only
build (`torch==<version>+cpu`), and the builder mounts a `pip.conf` at `/etc/pip.conf` that
adds PyTorch's CPU index (see `flavors.FLAVORS`); CI builds only the sklearn flavour.
"""

__all__ = ["FLAVOR_CONTAINERFILE"]

FLAVOR_CONTAINERFILE = r"""
# The flavour base of FLOps learner and aggregator images: BASE_IMAGE, a venv at /opt/venv
# first on PATH, and the FLOps runtime (Flower, MLflow, ...) with the flavour's ML library,
# installed from flops-runtime.lock, in which every distribution is pinned. Written by the
# FLOps image builder (image_builder/flavor_containerfile.py), which resolves the lock, builds
# this for every platform and pushes <registry>/flops/base-<flavor>:<key>.
#
# prepared-<TARGETARCH>/ holds the lock's wheels for that platform, installed by the builder
# natively and laid out like the venv (image_builder/cross_install.py); pip runs here only for
# a platform whose folder is empty (a distribution without a wheel for it).
ARG BASE_IMAGE=127.0.0.1:5050/flops/debian-python:bookworm
FROM ${BASE_IMAGE}

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    FLWR_TELEMETRY_ENABLED=0

RUN python3 -m venv /opt/venv

COPY flops-runtime.lock /opt/venv/flops-runtime.lock
ARG TARGETARCH
COPY prepared-${TARGETARCH}/ /opt/venv/
RUN if [ -f /opt/venv/flops-prepared ]; then \
      echo "FLOps runtime installed from wheels prepared by the builder"; \
    else \
      PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
      pip install --no-input --progress-bar off -r /opt/venv/flops-runtime.lock; \
    fi

ARG FLAVOR=sklearn
LABEL io.flops.flavor=${FLAVOR}
CMD ["python"]
""".lstrip("\n")
