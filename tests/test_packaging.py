"""The built wheel works anywhere: recipes inside the package, the console script, typing marker."""

import importlib.util
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=300)
    (path,) = out.glob("coral_ft-*.whl")
    return path


def test_the_wheel_carries_recipes_license_and_typing_marker(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if n.startswith("coral_ft/recipes/")}
    assert shipped == {p.name for p in (ROOT / "recipes").glob("*.toml")}
    assert "coral_ft/py.typed" in names and any(n.endswith("licenses/LICENSE") for n in names)


@pytest.mark.slow
def test_installed_wheel_benches_from_another_directory(wheel, tmp_path):
    # A fresh environment: the wheel installed into it, the dependencies borrowed from this one
    # (a path entry, so this environment's editable coral_ft stays out of sight).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(python), "-c", "import coral_ft; print(coral_ft.__file__)"], cwd=elsewhere,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv)), where  # the wheel's copy, not this checkout
    done = subprocess.run([str(venv / "bin" / "coral-ft"), "bench", "digits-lt", "--dry-run", "--out", "b"], cwd=elsewhere,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bench digits-lt" in done.stdout and "coral" in done.stdout
    shown = subprocess.run([str(venv / "bin" / "coral-ft"), "config", "show", "--recipe", "cifar10-lt", "--section", "bench"],
                           cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0 and "CIFAR10-LT" in shown.stdout
