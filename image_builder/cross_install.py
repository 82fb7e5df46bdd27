"""Install a lock's wheels for a target platform on the builder itself, for an image to COPY.

Running pip inside an emulated arm64 build is slow: the cold arm64 flavour base took about
6.5 minutes under qemu against about 1 minute for amd64, nearly all of it pip unpacking and
byte-compiling wheels. None of that work depends on the CPU it runs on: pip on the
builder's own machine can install the wheels built for another platform into a folder
(`--target` with `--platform`, `--only-binary=:all:`, `--no-deps`, since the lock is
already complete), and the builder's Python 3.11 byte-compiles them (byte code is the same
on every CPU; compiled once the file times are fixed, see `_compile`). The flavour
Containerfile copies that folder over its venv, laid out like it
(`lib/python3.11/site-packages`, `bin`, `share`, `include`), and only runs pip itself for a
platform whose folder is empty: when a pinned distribution has no wheel for it (an sdist
must be built on the platform), or the platform's machine is unknown here. Wheels are
chosen for glibc up to `MAX_GLIBC_MINOR` (Debian bookworm), which the base image must have.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from flops_core.commands import CommandTimeoutError, run_command
from flops_core.logs import get_logger
from image_builder.build_context import normalize_tree
from image_builder.pip_resolver import PipSettings, isolated_pip_env, relevant_pip_lines

__all__ = ["MAX_GLIBC_MINOR", "PREPARED_MARKER", "prepare_platform", "target_arch"]

_log = get_logger("image_builder.cross_install")

#: glibc 2.36 is Debian bookworm's; wheels for newer glibc would not load in the image.
MAX_GLIBC_MINOR = 36
#: The file (at the venv's root) that says the runtime was installed from this folder.
PREPARED_MARKER = "flops-prepared"

_MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
_VENV_DIRS = ("bin", "share", "include")
_VENV_PYTHON = "/opt/venv/bin/python"


def target_arch(platform: str) -> str:
    """Buildah's `TARGETARCH` for `platform`: `linux/arm64/v8` gives `arm64`."""
    parts = platform.split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def prepare_platform(
    lock: Sequence[str], *, platform: str, dest: Path, settings: PipSettings
) -> bool:
    """Install the wheels of `lock` for `platform` into `dest`, laid out like `/opt/venv`.

    Parameters
    ----------
    lock : Sequence[str]
        Every distribution to install, pinned.
    platform : str
        The target, e.g. `linux/arm64`.
    dest : Path
        A folder that is created (left empty when this returns False).
    settings : PipSettings
        The package indexes.

    Returns
    -------
    bool
        Whether `dest` holds the whole lock; False when the image must run pip itself.
    """
    dest.mkdir(parents=True, exist_ok=True)
    machine = _MACHINES.get(target_arch(platform))
    if not platform.startswith("linux/") or machine is None:
        _log.info("%s: no wheels chosen here; the image build runs pip", platform)
        return False
    staging = dest.parent / f".{dest.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    lock_file = dest.parent / f".{dest.name}.lock"
    lock_file.write_text("".join(f"{line}\n" for line in lock), encoding="utf-8")
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(MAX_GLIBC_MINOR, 16, -1)]
    command = [
        sys.executable,
        *("-m", "pip", "install", "--no-deps", "--only-binary=:all:", "--no-input", "--no-compile"),
        *("--progress-bar", "off", "--disable-pip-version-check", "--quiet"),
        *("--target", str(staging), "--python-version", "3.11"),
        *("--implementation", "cp", "--abi", "cp311"),
        *(arg for tag in (*tags, f"manylinux2014_{machine}") for arg in ("--platform", tag)),
        *("-r", str(lock_file)),
    ]
    try:
        result = run_command(command, timeout=settings.timeout, env=isolated_pip_env(settings))
    except (OSError, CommandTimeoutError) as e:
        _log.warning("%s: cannot install wheels here (%s); the image build runs pip", platform, e)
        shutil.rmtree(staging, ignore_errors=True)
        return False
    finally:
        lock_file.unlink(missing_ok=True)
    if result.returncode != 0:
        tail = " | ".join(relevant_pip_lines(result.output, limit=3))
        _log.warning(
            "%s: not every wheel is available (%s); the image build runs pip", platform, tail
        )
        shutil.rmtree(staging, ignore_errors=True)
        return False
    _lay_out_like_venv(staging, dest)
    _compile(dest, settings.timeout)
    (dest / PREPARED_MARKER).write_text(f"{platform}\n", encoding="utf-8")
    return True


def _compile(dest: Path, timeout: float) -> None:
    """Byte-compile after giving the sources their final time, so the `.pyc` files stay valid.

    A `.pyc` records its source's modification time; the build context gets
    `FIXED_MTIME` everywhere (for the layer cache), so compiling must come after.
    """
    normalize_tree(dest)
    site_packages = dest / "lib" / "python3.11" / "site-packages"
    command = [sys.executable, "-m", "compileall", "-q", "-j", "0", str(site_packages)]
    try:
        result = run_command(command, timeout=timeout)
    except (OSError, CommandTimeoutError) as e:
        _log.warning("byte-compiling %s failed (%s); images compile on first import", dest, e)
        return
    if result.returncode != 0:  # e.g. test files in Python 2 syntax, as pip tolerates them
        _log.debug("compileall reported errors:\n%s", result.tail(5))


def _lay_out_like_venv(staging: Path, dest: Path) -> None:
    """Move `--target`'s folder into `dest` as `/opt/venv` has it, scripts pointing there."""
    for name in _VENV_DIRS:
        if (staging / name).is_dir():
            (staging / name).rename(dest / name)
    site_packages = dest / "lib" / "python3.11" / "site-packages"
    site_packages.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(site_packages)
    scripts = dest / "bin"
    if scripts.is_dir():
        for script in scripts.iterdir():
            _point_shebang_at_venv(script)


def _point_shebang_at_venv(script: Path) -> None:
    if not script.is_file() or script.is_symlink():
        return
    with script.open("rb") as f:
        first = f.readline()
    if not (first.startswith(b"#!") and b"python" in first):
        return  # a native program, shipped as it is
    rest = script.read_bytes()[len(first) :]
    mode = script.stat().st_mode
    script.write_bytes(f"#!{_VENV_PYTHON}\n".encode() + rest)
    os.chmod(script, mode)
