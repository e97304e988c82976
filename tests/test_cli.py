"""The ``aiclassify`` console script: every command dispatches to a module with ``main``."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from aiclassify.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_module_has_a_main(command):
    module = importlib.import_module(COMMANDS[command][0])
    assert callable(module.main), command


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_answers_help_through_the_console_script(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"aiclassify {command}" in capsys.readouterr().out


def test_unknown_command_lists_the_commands(capsys):
    assert main(["nope"]) == 2
    output = capsys.readouterr().out
    assert all(command in output for command in COMMANDS)


@pytest.mark.parametrize("package", ["aiclassify.train", "aiclassify.evaluate", "aiclassify.predict"])
def test_python_dash_m_runs_each_job_package(package):
    result = subprocess.run(
        [sys.executable, "-m", package, "--help"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
