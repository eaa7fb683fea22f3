"""The Dockerfile's build steps run in a fresh virtualenv (no container engine on this machine or CI's): the files
it copies install the project whole (packages, templates, rules, console commands) and its command starts."""

import json
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in (raw.strip() for raw in text.splitlines()) if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The Dockerfile's COPY steps into a build folder, then its ``pip install`` step into a fresh virtualenv."""
    steps = _instructions(ROOT / "Dockerfile")
    context = tmp_path_factory.mktemp("image") / "app"
    context.mkdir()
    for instruction, arguments in steps:
        if instruction == "COPY":
            *sources, target = [part for part in shlex.split(arguments) if not part.startswith("--")]
            for source in sources:
                origin = ROOT / source
                into_folder = len(sources) > 1 or (target.endswith("/") and origin.is_file())
                destination = context / target / origin.name if into_folder else context / target
                if origin.is_dir():
                    shutil.copytree(origin, destination, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, destination)
    environment = context.parent / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / "bin" / "python"
    installs = [arguments for instruction, arguments in steps if instruction == "RUN" and "pip install" in arguments]
    assert installs == ["pip install ."]
    # The step as written, less the dependencies: this machine's are those of the project's own .venv (added to the
    # path below), so the test checks what the image's files install, not what the registry serves.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "."], cwd=context, check=True,
                   capture_output=True, timeout=600)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return steps, context, environment


def _run(environment: Path, *command, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([str(environment / "bin" / command[0]), *command[1:]], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_the_image_installs_every_package_with_its_templates_and_rules(built, tmp_path):
    _, context, environment = built
    included = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [pattern.rstrip("*") for pattern in included]
    # Every package of the project's folder is installed (a new room left out of pyproject would break the image).
    rooms = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert rooms <= set(packages), f"packages missing from pyproject's include: {sorted(rooms - set(packages))}"
    probe = ("import importlib, json, pathlib, sys; names = sys.argv[1:]; "
             "print(json.dumps({n: str(pathlib.Path(importlib.import_module(n).__file__).parent) for n in names}))")
    found = _run(environment, "python", "-c", probe, *packages, "serve", cwd=tmp_path)  # not the source folder
    assert found.returncode == 0, found.stderr
    where = json.loads(found.stdout)
    assert all(str(environment) in path for path in where.values()), where  # the installed copy, not the source
    installed = {name: Path(path) for name, path in where.items()}
    assert (installed["analysis"] / "templates" / "monitoring.html").exists()
    assert (installed["scoring"] / "templates" / "planner.html").exists()
    assert (installed["models"] / "rules_example.toml").exists()
    page = _run(environment, "python", "-c",
                "from analysis.rendering import render_page; "
                "print(render_page('base.html').startswith('<!DOCTYPE html>'))", cwd=tmp_path)
    assert page.stdout.strip() == "True", page.stderr
    assert (context / "deploy" / "nightly.sh").exists()


def test_the_image_command_and_the_nightly_commands_start(built, tmp_path):
    steps, _, environment = built
    command = json.loads(next(arguments for instruction, arguments in steps if instruction == "CMD"))
    assert command[:2] == ["lead-serve", "http"] and "0.0.0.0" in command
    for program in ("lead-serve", "lead-train"):
        helped = _run(environment, program, "--help", cwd=tmp_path)
        assert helped.returncode == 0 and "usage:" in helped.stdout, helped.stderr
    parsed = _run(environment, "python", "-c",
                  f"import serve; serve.build_parser().parse_args({command[1:]!r}); print('ok')", cwd=tmp_path)
    assert parsed.stdout.strip() == "ok", parsed.stderr
    assert _run(environment, "lead-serve", "load", "--help", cwd=tmp_path).returncode == 0
