"""The artifacts the local run executes: `sam build` output for this machine, and boto3.

What ships is what runs. The local run and the integration tests do not import the
handlers from the development virtualenv: they run each function from the folder
`sam build` made for it, with the built layer where Lambda mounts it (/opt/python) and the
boto3 that the Lambda runtime provides, in an interpreter of the runtime's version.

    artifacts = ensure_built()          # builds when the sources changed since the last build
    artifacts.template                  # .aws-sam/build-local/template.yaml

    python -m kontext_tools.local.build            # the same, from the command line
    python -m kontext_tools.local.build --release  # what `sam deploy` ships (arm64, .aws-sam/build)
                                                   # then `sam validate --lint`

SAM CLI lives in a virtualenv of its own (`make sam`, .venv-sam): it pins versions of
its own. The build needs the runtime's Python (python3.12) on PATH, for pip to resolve
wheels for it; pyenv provides one here (`pyenv prefix 3.12.1`).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kontext_tools.layer_requirements import distribution_name, runtime_dependencies

PROJECT_ROOT = Path(__file__).resolve().parents[3]
RUNTIME_VERSION = "3.12"  # template.yaml's Runtime: python3.12
# How a built function's interpreter starts, as Lambda's does: `-I -S` keep every
# site-packages folder (the development virtualenv's too) off the import path; `-B` writes
# no bytecode, since Lambda's code folders are read-only and keep none.
RUNTIME_FLAGS = ("-I", "-S", "-B")
# KONTEXT_LOCAL_BUILD_DIR: another folder, e.g. for a second checkout's runs beside this one.
LOCAL_BUILD_DIR = Path(
    os.environ.get("KONTEXT_LOCAL_BUILD_DIR") or PROJECT_ROOT / ".aws-sam" / "build-local"
)
RELEASE_BUILD_DIR = PROJECT_ROOT / ".aws-sam" / "build"  # where `sam deploy` looks
RUNTIME_SDK_DIR = PROJECT_ROOT / ".aws-sam" / "lambda-runtime-sdk"
_STAMP = ".kontext-build-stamp"
# What a build depends on, and how it is made (this file: its bytecode step): a change to
# any of these makes the next local run build again.
_BUILD_INPUTS = (
    "template.yaml",
    "functions",
    "layers",
    "pyproject.toml",
    "src/kontext_tools/local/build.py",
)


class BuildError(RuntimeError):
    """The artifacts could not be built; the message says what to install or fix."""


@dataclass(frozen=True)
class BuildArtifacts:
    build_dir: Path
    runtime_sdk_dir: Path
    python: Path

    @property
    def template(self) -> Path:
        return self.build_dir / "template.yaml"

    def import_path(self, function_dir: Path | None) -> list[str]:
        """What Lambda puts on a function's import path: its folder (None: none), the
        layer's `python/` (mounted at /opt/python) and the runtime's boto3."""
        layer = self.build_dir / "CommonLayer" / "python"
        own = [str(function_dir)] if function_dir else []
        return [*own, str(layer), str(self.runtime_sdk_dir)]


def host_architecture() -> str:
    """The Lambda architecture that runs natively on this machine."""
    return "arm64" if platform.machine().lower() in {"aarch64", "arm64"} else "x86_64"


def find_runtime_python() -> Path:
    """An interpreter of the Lambda runtime's Python version (a pyenv shim is not one)."""
    wanted = f"python{RUNTIME_VERSION}"
    explicit = os.environ.get("LAMBDA_PYTHON")
    candidates = [Path(explicit)] if explicit else []
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(
        pyenv_root.glob(f"versions/{RUNTIME_VERSION}.*/bin/{wanted}"), reverse=True
    )
    on_path = shutil.which(wanted)
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if _is_runtime_python(candidate):
            return candidate
    raise BuildError(
        f"no {wanted} found (the Lambda runtime's version, needed by sam build and the local "
        f"run): install it (e.g. `pyenv install {RUNTIME_VERSION}`) or set LAMBDA_PYTHON"
    )


def _is_runtime_python(candidate: Path) -> bool:
    if not (candidate.is_file() and os.access(candidate, os.X_OK)):
        return False
    answer = subprocess.run(  # noqa: S603 - a version check
        [str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    return answer.returncode == 0 and answer.stdout.strip() == RUNTIME_VERSION


def find_sam() -> Path:
    explicit = os.environ.get("SAM_CLI")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(PROJECT_ROOT / ".venv-sam" / "bin" / "sam")
    on_path = shutil.which("sam")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise BuildError("SAM CLI not found: run `make sam` (installs it into .venv-sam)")


def sources_digest(root: Path = PROJECT_ROOT) -> str:
    """A digest of every file a build reads, so a stale build is never run. The checkout's
    own path is part of it: a built template names its state machines by a path relative to
    the sources, so a build made from another checkout (a worktree) is not this one's."""
    digest = hashlib.sha256(str(root.resolve()).encode())
    for name in _BUILD_INPUTS:
        path = root / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def build(
    build_dir: Path = LOCAL_BUILD_DIR,
    *,
    architecture: str | None = None,
    quiet: bool = True,
    python: Path | None = None,
) -> Path:
    """`sam build` of template.yaml into build_dir, for the given architecture (None: the
    template's default, as `sam build` alone would)."""
    python = python or find_runtime_python()
    environment = dict(os.environ)
    # sam's Python workflow looks for the runtime's interpreter on PATH.
    environment["PATH"] = f"{python.parent}{os.pathsep}{environment.get('PATH', '')}"
    command = [
        str(find_sam()),
        "build",
        "--template-file",
        str(PROJECT_ROOT / "template.yaml"),
        "--build-dir",
        str(build_dir),
        # A cache of its own: wheels of one architecture must never serve the other.
        "--cache-dir",
        str(build_dir.parent / f"cache-{build_dir.name}"),
    ]
    if architecture is not None:
        command += ["--parameter-overrides", f"Architecture={architecture}"]
    completed = subprocess.run(  # noqa: S603 - our own command line
        command,
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=quiet,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout or "").strip()[-2000:] if quiet else ""
        raise BuildError(f"sam build failed (exit {completed.returncode})\n{detail}".strip())
    compile_bytecode(build_dir, python)
    return build_dir


def compile_bytecode(build_dir: Path, python: Path) -> None:
    """Every module's bytecode, for the runtime's Python, beside its source in the build.

    Lambda mounts /opt and /var/task read-only, so Python cannot keep the bytecode it
    compiles: a module shipped without it is compiled again at every cold start (about
    0.35 s of this layer's import). `checked-hash` keeps a .pyc in use only while its
    source is unchanged, whatever times the zip gives the files.
    """
    completed = subprocess.run(  # noqa: S603 - our own command line
        [
            str(python),
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "checked-hash",
            str(build_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        detail = (completed.stdout + completed.stderr).strip()[-2000:]
        raise BuildError(f"compiling the build's bytecode failed\n{detail}")


def install_runtime_sdk(target: Path = RUNTIME_SDK_DIR, *, python: Path | None = None) -> Path:
    """boto3 as the Lambda runtime provides it (the layer does not ship it)."""
    marker = target / ".installed"
    wanted = [r for r in runtime_dependencies() if distribution_name(r) in {"boto3", "botocore"}]
    if marker.exists() and marker.read_text(encoding="utf-8") == "\n".join(wanted):
        return target
    shutil.rmtree(target, ignore_errors=True)
    interpreter = python or find_runtime_python()
    completed = subprocess.run(  # noqa: S603 - our own command line
        [str(interpreter), "-m", "pip", "install", "--quiet", "--target", str(target), *wanted],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise BuildError(f"could not install {wanted} for the local runtime:\n{completed.stderr}")
    marker.write_text("\n".join(wanted), encoding="utf-8")
    return target


def ensure_built(build_dir: Path = LOCAL_BUILD_DIR) -> BuildArtifacts:
    """The local build, rebuilt when any of its sources changed since it was made."""
    stamp = build_dir / _STAMP
    python = find_runtime_python()
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time per folder: two runs started together (two terminals, parallel
    # test sessions) would otherwise both write the same build.
    with (build_dir.parent / f".{build_dir.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        digest = sources_digest()
        if not (stamp.exists() and stamp.read_text(encoding="utf-8") == digest):
            build(build_dir, architecture=host_architecture(), python=python)
            stamp.write_text(digest, encoding="utf-8")
    return BuildArtifacts(build_dir, install_runtime_sdk(python=python), python)


def validate() -> None:
    """`sam validate --lint`: the SAM translator and cfn-lint on template.yaml."""
    completed = subprocess.run(  # noqa: S603 - our own command line
        [str(find_sam()), "validate", "--lint", "--template-file", "template.yaml"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")},
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise BuildError(f"sam validate --lint failed:\n{completed.stdout}{completed.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the functions and the layer with sam.")
    parser.add_argument(
        "--release",
        action="store_true",
        help="build for --architecture into .aws-sam/build (what sam deploy ships) and validate",
    )
    parser.add_argument(
        "--architecture",
        choices=["arm64", "x86_64"],
        help="the template's Architecture parameter for a release build; make deploy passes "
        "the same value to sam deploy, so the binaries match the functions (default: the "
        "template's default)",
    )
    args = parser.parse_args(argv)
    try:
        if args.release:
            build(RELEASE_BUILD_DIR, architecture=args.architecture, quiet=False)
            validate()
            print(f"built and validated: {RELEASE_BUILD_DIR}")
        else:
            artifacts = ensure_built()
            print(f"built for {host_architecture()}: {artifacts.build_dir}")
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
