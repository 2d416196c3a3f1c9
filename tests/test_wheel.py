"""The wheel carries the program and the IDL, and an installed ghostpay finds them."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_program(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("ghostpay-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ghostpay/program/ghostpay.so" in names and "ghostpay/idl.json" in names
    assert "ghostpay/py.typed" in names and "ghostpay/sync_client.pyi" in names  # the blocking client is typed
    assert {f"ghostpay/analytics/static/{f}" for f in ("index.html", "dashboard.js", "dashboard.css")} <= set(names)
    assert not any(n.startswith(("tools/", "tests/", "program/")) for n in names)

    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True)
    probe = "from ghostpay import artifacts; print(artifacts.PROGRAM_SO, len(artifacts.program_bytes()))"
    out = subprocess.run([python, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    location, size = out.split()
    assert location.startswith(str(env)) and int(size) == (ROOT / "ghostpay/program/ghostpay.so").stat().st_size
