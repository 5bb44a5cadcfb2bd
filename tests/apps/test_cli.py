"""The ``hybridseg`` command line: ``info``, help, version, the command registry."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hybridseg
import hybridseg.apps.cli as cli
from hybridseg.apps.cli import main

INFO_KEYS = {"hybridseg", "system", "dependencies", "optional", "numba", "torch", "data"}


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    home = tmp_path / "data_home"
    monkeypatch.setenv("HYBRIDSEG_DATA_HOME", str(home))
    return home


def test_info_json(capsys, data_home):
    (data_home / "camvid").mkdir(parents=True)
    assert main(["info", "--json", "--no-probe"]) == 0
    out = capsys.readouterr().out
    info = json.loads(out)
    assert set(info) == INFO_KEYS
    assert info["hybridseg"]["version"] == hybridseg.__version__
    assert Path(info["hybridseg"]["location"]) == Path(hybridseg.__file__).parent
    assert info["system"]["python"] == sys.version.split()[0]
    assert info["dependencies"]["numpy"] == __import__("numpy").__version__
    assert set(info["dependencies"]) >= {"numpy", "scipy", "scikit-learn", "numba", "pillow"}
    assert "torch" in info["optional"]
    # --no-probe: the requested layer is reported, the one in use is not probed.
    assert "threading_layer_requested" in info["numba"]
    assert "threading_layer" not in info["numba"]
    assert info["numba"]["num_threads"] >= 1
    assert isinstance(info["torch"]["installed"], bool)
    assert Path(info["data"]["data_home"]) == data_home
    assert info["data"]["data_home_env"] == str(data_home)
    assert info["data"]["cached"] == ["camvid"]


def test_info_text_probes_numba(capsys, data_home):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for section in INFO_KEYS:
        assert re.search(rf"^{section}:$", out, re.M), section
    # The probed layer is its own line (not only "threading_layer_requested").
    m = re.search(r"^\s*threading_layer: (\S+)$", out, re.M)
    assert m, out
    assert m.group(1) in {"tbb", "omp", "workqueue"}
    assert str(data_home) in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "usage: hybridseg" in out
    assert "info" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"hybridseg {hybridseg.__version__}"


def test_unknown_command_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "no-such-command" in capsys.readouterr().err


def test_register_twice_raises():
    name = "_test_cli_dummy"
    assert name not in cli._COMMANDS
    try:

        @cli.command(name, help="a dummy")
        def dummy(args):
            return 0

        with pytest.raises(ValueError, match="registered twice"):

            @cli.command(name, help="again")
            def dummy2(args):  # pragma: no cover
                return 0

        assert cli._COMMANDS[name][0] is dummy
        with pytest.raises(ValueError, match="registered twice"):
            cli.command("info", help="clash")(lambda args: 0)
    finally:
        cli._COMMANDS.pop(name, None)
    assert name not in cli._COMMANDS


def test_registered_command_runs_and_errors_become_status_1(capsys):
    name = "_test_cli_fail"

    def configure(parser):
        parser.add_argument("--boom", action="store_true")

    try:

        @cli.command(name, help="fails on request", configure=configure)
        def fail(args):
            """Long help of the test command."""
            if args.boom:
                raise FileNotFoundError("nothing here")
            print("fine")
            return 0

        assert main([name]) == 0
        assert capsys.readouterr().out.strip() == "fine"
        assert main([name, "--boom"]) == 1
        err = capsys.readouterr().err
        assert f"hybridseg {name}: error: nothing here" in err
    finally:
        cli._COMMANDS.pop(name, None)


def test_the_old_module_path_registers_and_runs_commands(capsys):
    """``hybridseg.cli`` (where the guide registers a sub-command) forwards to apps.cli."""
    import hybridseg.cli as old

    assert old.main is main and old.command is cli.command
    name = "_test_cli_old_path"
    try:

        @old.command(name, help="registered through hybridseg.cli")
        def hello(args):
            print("hello")
            return 0

        assert old.main([name]) == 0
        assert capsys.readouterr().out.strip() == "hello"
    finally:
        cli._COMMANDS.pop(name, None)


def _env(tmp_path):
    env = dict(os.environ)
    env["HYBRIDSEG_DATA_HOME"] = str(tmp_path / "home")
    return env


def test_python_m_hybridseg(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hybridseg", "info", "--no-probe"],
        capture_output=True, text=True, timeout=300, env=_env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert "hybridseg:" in proc.stdout
    assert hybridseg.__version__ in proc.stdout
    assert str(tmp_path / "home") in proc.stdout


def test_console_script(tmp_path):
    script = Path(sys.executable).parent / ("hybridseg.exe" if os.name == "nt" else "hybridseg")
    assert script.is_file(), f"console script missing: {script}"
    proc = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=120,
        env=_env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\s+info\s+versions", proc.stdout, re.M), proc.stdout
