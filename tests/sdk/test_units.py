"""Offline pieces: monikers and URLs, keypair loading, exact Decimal amounts, typed program errors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from solders.keypair import Keypair

from ghostpay import exceptions
from ghostpay.cluster import resolve
from ghostpay.exceptions import InvalidArgument, ProgramError, program_error_class
from ghostpay.keypairs import load_keypair
from ghostpay.tokens import Atomic, from_atomic, to_atomic


def test_monikers_and_ws_urls() -> None:
    assert resolve("l").http_url == resolve("localnet").http_url == "http://127.0.0.1:8899"
    assert resolve("localnet").ws_url == "ws://127.0.0.1:8900"
    assert resolve("d").ws_url == "wss://api.devnet.solana.com"
    assert resolve("mainnet-beta").http_url == "https://api.mainnet-beta.solana.com"
    assert resolve("http://10.0.0.1:1234/rpc").ws_url == "ws://10.0.0.1:1235/rpc"
    with pytest.raises(InvalidArgument):
        resolve("ftp://x")


def test_keypair_sources(tmp_path, monkeypatch) -> None:
    kp = Keypair()
    path = tmp_path / "id.json"
    path.write_text(json.dumps(list(bytes(kp))))
    assert load_keypair(path) == load_keypair(str(path)) == kp
    assert load_keypair(bytes(kp)) == load_keypair(json.dumps(list(bytes(kp)))) == kp
    assert load_keypair(str(kp)) == kp  # base58 secret
    bracketed = Keypair.from_seed(b"[" + bytes(31))  # raw bytes that start like a JSON array (1 keypair in 256)
    assert load_keypair(bytes(bracketed)) == load_keypair(bytes(bracketed)[:32]) == bracketed
    monkeypatch.setenv("HOME", str(tmp_path))
    cli = tmp_path / ".config" / "solana"
    (cli / "cli").mkdir(parents=True)
    (cli / "id.json").write_text(json.dumps(list(bytes(Keypair()))))
    other = Keypair()
    (tmp_path / "mine.json").write_text(json.dumps(list(bytes(other))))
    assert load_keypair() != other
    (cli / "cli" / "config.yml").write_text(f"json_rpc_url: x\nkeypair_path: {tmp_path / 'mine.json'}\n")
    assert load_keypair() == other
    with pytest.raises(InvalidArgument):
        load_keypair(b"\x01" * 10)
    with pytest.raises(InvalidArgument):
        load_keypair(tmp_path / "missing.json")


def test_exact_amounts() -> None:
    assert to_atomic(Decimal("0.01"), 6) == 10_000 and to_atomic("1", 9) == 10**9 and to_atomic(2, 0) == 2
    assert to_atomic(Atomic(7), 6) == 7
    assert from_atomic(10_000, 6) == Decimal("0.01") and str(from_atomic(10_000, 6)) == "0.010000"
    assert from_atomic(to_atomic(Decimal("123.456789"), 6), 6) == Decimal("123.456789")
    for bad in (0.1, Decimal("0.0000001"), Decimal("-1"), "abc", Decimal("NaN"), Decimal(2**64)):
        with pytest.raises(InvalidArgument):
            to_atomic(bad, 6)  # type: ignore[arg-type]


def test_program_errors_are_typed_from_the_idl() -> None:
    idl = json.loads(Path("idl/ghostpay.json").read_text())
    for entry in idl["errors"]:
        err = ProgramError.from_code(entry["code"])
        assert type(err) is program_error_class(entry["name"]) is getattr(exceptions, entry["name"])
        assert (err.name, err.code, err.message) == (entry["name"], entry["code"], entry["msg"])
        assert isinstance(err, exceptions.GhostPayError)
    assert ProgramError.from_code(3010).name == "AccountNotSigner"
    unknown = ProgramError.from_code(424242)
    assert type(unknown) is ProgramError and unknown.code == 424242


def test_memcmp_offsets_from_the_idl_match_the_c_header() -> None:
    import re

    from ghostpay.discovery import HEAD
    from tests.localnet.conftest import ROOT

    header = (ROOT / "program" / "include" / "ghostpay_idl.h").read_text()
    for account, prefix in (("Agent", "GP_AGENT_OFFSET_"), ("WorkOrder", "GP_WORK_ORDER_OFFSET_")):
        defined = {name.lower(): int(offset) for name, offset in re.findall(rf"#define {prefix}(\w+) (\d+)u", header)}
        assert HEAD[account] == defined
