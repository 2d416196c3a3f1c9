"""Build the on-chain program: program/*.c -> clang-19 (BPF) -> sbpf_link -> SBPFv0 .so.

    python -m tools.build_program          # write ghostpay/program/ghostpay.so
    python -m tools.build_program --check  # exit 1 if the committed .so is stale

The .so is committed as package data, so users and tests need no C toolchain;
the check (and a test) rebuild it where clang-19 is installed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.sbpf_link import LinkError, link

ROOT = Path(__file__).resolve().parent.parent
PROGRAM_DIR = ROOT / "program"
MAIN_SOURCE = "ghostpay.c"
SO_PATH = ROOT / "ghostpay" / "program" / "ghostpay.so"
CLANG = "clang-19"

CFLAGS = (
    "-target",
    "bpfel",
    "-mcpu=v2",  # v3+ emit JMP32/ALU32 and v4 sign-extending ops that SBPFv0 rejects
    "-O2",
    "-std=c17",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-strict-aliasing",  # account data is read through typed views
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-function",  # sdk/ headers define helpers that not every handler uses
    "-mllvm",
    "-bpf-stack-size=4096",  # Solana's frame size; upstream defaults to 512
)


class BuildError(Exception):
    """The program did not compile or link; the message says why."""


def clang_available() -> bool:
    return shutil.which(CLANG) is not None


def compile_object(source: Path, out: Path) -> None:
    result = subprocess.run(
        [CLANG, *CFLAGS, "-c", str(source), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BuildError(f"{CLANG} failed:\n{result.stderr}")


def build_so(source: Path = PROGRAM_DIR / MAIN_SOURCE) -> bytes:
    """Compile and link one C translation unit (default: GhostPay); return the .so bytes. The tests also
    build their own small programs with it (tests/programs/)."""
    if not clang_available():
        raise BuildError(f"{CLANG} not found: install it with `apt-get install clang-19 llvm-19`")
    with tempfile.TemporaryDirectory() as scratch:
        obj = Path(scratch) / "program.o"
        compile_object(source, obj)
        try:
            return link(obj.read_bytes())
        except LinkError as exc:
            raise BuildError(f"sbpf-link: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.build_program", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="rebuild and compare with the committed .so")
    args = parser.parse_args(argv)
    try:
        so = build_so()
    except BuildError as exc:
        print(f"build_program: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if SO_PATH.exists() and SO_PATH.read_bytes() == so:
            print(f"build_program: {SO_PATH.relative_to(ROOT)} is fresh ({len(so)} bytes)")
            return 0
        print(
            f"build_program: {SO_PATH.relative_to(ROOT)} is stale; run `python -m tools.build_program`", file=sys.stderr
        )
        return 1
    SO_PATH.parent.mkdir(parents=True, exist_ok=True)
    SO_PATH.write_bytes(so)
    print(f"build_program: wrote {SO_PATH.relative_to(ROOT)} ({len(so)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
