"""The container image, as far as it can be checked without a container engine.

No Docker/Podman/BuildKit exists where this project is tested, so the image is never built
here. What is checked: the Dockerfile's shape (multi-stage, pinned, non-root numeric user,
exec-form entry point `svcprobe run --config /etc/svcprobe/config.yaml`), and its install
steps, replayed in clean virtualenvs from the pinned wheels that
scripts/deps.d/40-monitoring.sh downloaded (offline: --no-index), ending with `pip check` and
the installed `svcprobe` entry point running.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import venv

import pytest
from packaging.requirements import Requirement

from tests.support.chart import CACHE_BIN, ROOT, run

DOCKERFILE = ROOT / "Dockerfile"
PINS = ROOT / "requirements-image.txt"
WHEELS = CACHE_BIN.parent / "wheels" / "image"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def build_args() -> dict[str, str]:
    args = {}
    for word, rest in instructions():
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value.strip('"')
    return args


def pins() -> dict[str, str]:
    out = {}
    for line in PINS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"not pinned: {line}"
            out[name.lower().replace("_", "-")] = version
    return out


# --- Shape ----------------------------------------------------------------------------------

def test_multi_stage_on_a_slim_python_base() -> None:
    st = stages()
    assert len(st) == 2
    assert st[0][0][1].endswith(" AS build")
    assert build_args()["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert all(s[0][1].startswith("${PYTHON_IMAGE}") for s in st)
    runtime = st[-1]
    # The runtime stage only copies the finished virtualenv: no compilers, no pip runs.
    assert [w for w, _ in runtime if w == "RUN"] == []
    assert ("COPY", "--from=build /opt/svcprobe /opt/svcprobe") in runtime


def test_runs_as_numeric_non_root_user() -> None:
    users = [rest for word, rest in stages()[-1] if word == "USER"]
    assert users, "no USER in the runtime stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0
    assert gid.isdigit() and int(gid) != 0


def test_entrypoint_is_exec_form_svcprobe_run() -> None:
    runtime = dict((w, r) for w, r in stages()[-1] if w in ("ENTRYPOINT", "CMD", "EXPOSE"))
    assert json.loads(runtime["ENTRYPOINT"]) == ["svcprobe"]          # exec form: no shell
    assert json.loads(runtime["CMD"]) == ["run", "--config", "/etc/svcprobe/config.yaml"]
    assert runtime["EXPOSE"] == "9142"


def test_the_chart_runs_what_the_image_expects() -> None:
    values = (ROOT / "chart" / "values.yaml").read_text()
    assert "runAsUser: 10001" in values and "runAsGroup: 10001" in values
    daemonset = (ROOT / "chart" / "templates" / "daemonset.yaml").read_text()
    assert 'args: ["run", "--config", "/etc/svcprobe/config.yaml"]' in daemonset
    assert "mountPath: /etc/svcprobe\n" in daemonset


def test_dependencies_are_pinned_and_satisfy_pyproject() -> None:
    import tomllib

    pinned = pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = req.name.lower().replace("_", "-")
        assert name in pinned, f"{req.name} is not pinned in requirements-image.txt"
        assert req.specifier.contains(pinned[name]), f"{name}=={pinned[name]} violates {spec}"
    for requirement in build_args()["BUILD_REQUIREMENTS"].split():
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9.]*", requirement), requirement


def test_dockerignore_admits_only_the_build_inputs() -> None:
    lines = [l for l in (ROOT / ".dockerignore").read_text().splitlines()
             if l and not l.startswith("#")]
    assert lines[0] == "*"
    admitted = {l[1:].rstrip("/") for l in lines if l.startswith("!")}
    copied = set()
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
            copied |= {pathlib.PurePath(p).parts[0] for p in rest.split()[:-1]}
    assert copied == admitted


# --- The install steps, replayed ------------------------------------------------------------

def make_venv(path: pathlib.Path) -> pathlib.Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin"


def pip(bindir: pathlib.Path, *args: str) -> None:
    run([str(bindir / "python"), "-m", "pip", "--disable-pip-version-check", "--no-cache-dir",
         *args, "--no-index", "--find-links", str(WHEELS)])


@pytest.mark.timeout(600)
def test_install_steps_in_a_clean_venv(tmp_path: pathlib.Path) -> None:
    if not WHEELS.is_dir() or not any(WHEELS.glob("*.whl")):
        message = f"no pinned wheels in {WHEELS} (run scripts/install-test-deps)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # The build context, as the Dockerfile's COPY lines lay it out in /src.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements-image.txt"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "agent", src / "agent",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    # RUN python -m venv /opt/build && pip install --no-deps ${BUILD_REQUIREMENTS}
    build = make_venv(tmp_path / "build")
    pip(build, "install", "--no-deps", *build_args()["BUILD_REQUIREMENTS"].split())
    # RUN python -m venv /opt/svcprobe; pip install --no-deps --only-binary=:all: -r requirements
    app = make_venv(tmp_path / "svcprobe")
    pip(app, "install", "--no-deps", "--only-binary=:all:", "-r", str(src / "requirements-image.txt"))
    # RUN pip wheel --no-deps --no-build-isolation; pip install --no-deps the wheel; pip check
    wheels = tmp_path / "wheels"
    pip(build, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), str(src))
    (wheel,) = wheels.glob("svcprobe-*.whl")
    pip(app, "install", "--no-deps", str(wheel))
    check = run([str(app / "python"), "-m", "pip", "check"])
    assert "No broken requirements found" in check.stdout

    # The entry point the image runs: `svcprobe` on PATH, resolving to agent.cli:main.
    probe = run([str(app / "python"), "-c",
                 "import importlib.metadata as m, json; "
                 "print(json.dumps([e.value for e in m.entry_points(group='console_scripts') "
                 "if e.name == 'svcprobe']))"])
    assert json.loads(probe.stdout) == ["agent.cli:main"]
    env = {"PATH": f"{app}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    help_run = subprocess.run(["svcprobe", "run", "--help"], env=env, capture_output=True,
                              text=True, timeout=60)
    assert help_run.returncode == 0, help_run.stderr
    assert "--config" in help_run.stdout
    # The image's default command with a bad config file stops with the key named (exit 2),
    # proving `run --config` reads and validates the file.
    bad = tmp_path / "config.yaml"
    bad.write_text("scheduler:\n  interval_seconds: -1\n")
    bad_run = subprocess.run(["svcprobe", "run", "--config", str(bad)], env=env,
                             capture_output=True, text=True, timeout=60)
    assert bad_run.returncode == 2, bad_run.stdout + bad_run.stderr
    assert "interval_seconds" in bad_run.stderr + bad_run.stdout
    # Only pinned distributions (plus svcprobe) ended up in the environment.
    listed = run([str(app / "python"), "-m", "pip", "list", "--format", "json"])
    installed = {d["name"].lower().replace("_", "-") for d in json.loads(listed.stdout)}
    assert installed - {"pip", "setuptools", "svcprobe"} == set(pins())
