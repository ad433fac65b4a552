"""
Packaging: in fresh virtual environments, both a regular install and the
Makefile's editable install expose the C{chat} twistd plugin.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
# Left out of the copy: environments, caches and build output, which a fresh
# clone does not have either.
EXCLUDED = {
    ".venv",
    ".git",
    "build",
    "dist",
    "var",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "dropin.cache",
}
INSTALL_TIMEOUT = 300
RUN_TIMEOUT = 60


def copyRepository(destination: Path) -> Path:
    """
    Copy the checkout to C{destination}, without environments and caches, so
    that installing from it cannot touch the real checkout.
    """

    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = {n for n in names if n in EXCLUDED or n.endswith(".egg-info")}
        if Path(directory) == REPOSITORY / "bench":
            ignored.add("out")
        return ignored

    shutil.copytree(REPOSITORY, destination, ignore=ignore)
    return destination


def cleanEnvironment() -> dict[str, str]:
    """
    The environment for commands in another virtualenv: nothing that would
    let them import from this one.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(command: list[str], cwd: Path, timeout: float) -> str:
    result = subprocess.run(
        command,
        cwd=cwd,
        env=cleanEnvironment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def makeVirtualenv(path: Path) -> Path:
    """
    A fresh virtualenv (no system site-packages); return its bin directory.
    """
    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", str(path)], path.parent, RUN_TIMEOUT)
    return path / "bin"


def assertPluginInstalled(bin: Path, elsewhere: Path, packageUnder: Path) -> None:
    """
    Run from a directory holding no project file, C{twistd --help} lists
    C{chat}, C{twistd chat --help} shows its options, and C{twisted_chat} is
    imported from C{packageUnder}.
    """
    help = run([str(bin / "twistd"), "--help"], elsewhere, RUN_TIMEOUT)
    commands = help.split("Commands:", 1)[1]
    assert any(line.split()[:1] == ["chat"] for line in commands.splitlines()), help
    options = run([str(bin / "twistd"), "chat", "--help"], elsewhere, RUN_TIMEOUT)
    for option in ("--listen=", "--users=", "--audit-log=", "--udp-port="):
        assert option in options, options
    location = run(
        [
            str(bin / "python"),
            "-c",
            "import twisted_chat; print(twisted_chat.__file__)",
        ],
        elsewhere,
        RUN_TIMEOUT,
    )
    assert Path(location.strip()).is_relative_to(packageUnder), location


def test_install_and_editable_install_expose_the_plugin(tmp_path: Path) -> None:
    """
    When the project is installed with pip, plainly or editable in compat mode, into a
    fresh virtualenv, twistd lists the chat plugin.
    """
    source = copyRepository(tmp_path / "source")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    regular = tmp_path / "regular"
    bin = makeVirtualenv(regular)
    run(
        [str(bin / "pip"), "install", "--quiet", str(source)],
        elsewhere,
        INSTALL_TIMEOUT,
    )
    assertPluginInstalled(bin, elsewhere, regular)
    assert list(
        regular.glob("lib/python*/site-packages/twisted/plugins/chat_plugin.py")
    )

    editable = tmp_path / "editable"
    bin = makeVirtualenv(editable)
    run(
        [
            str(bin / "pip"),
            "install",
            "--quiet",
            "--config-settings",
            "editable_mode=compat",
            "-e",
            ".",
        ],
        source,
        INSTALL_TIMEOUT,
    )
    assertPluginInstalled(bin, elsewhere, source)
