"""`--engine solana-test-validator`: run Agave's test validator with the same options instead."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

from ghostpay.localnet.server import LocalnetConfig, LocalnetError

ENGINES = ("litesvm", "solana-test-validator")
TEST_VALIDATOR = "solana-test-validator"


def validator_command(
    config: LocalnetConfig, program_so: str, program_id: str, binary: str = TEST_VALIDATOR
) -> list[str]:
    """The solana-test-validator command line for `config` (its pub-sub is always RPC port + 1)."""
    if config.ws_port != config.rpc_port + 1:
        raise LocalnetError(
            f"{TEST_VALIDATOR} serves pub-sub on the RPC port + 1 ({config.rpc_port + 1}), not {config.ws_port}"
        )
    command = [
        binary,
        "--ledger",
        str(config.ledger_dir),
        "--rpc-port",
        str(config.rpc_port),
        "--bind-address",
        config.host,
        "--bpf-program",
        program_id,
        program_so,
    ]
    if config.reset:
        command.append("--reset")
    if config.quiet:
        command.append("--quiet")
    return command


def run_test_validator(config: LocalnetConfig) -> NoReturn:
    """Replace this process with solana-test-validator; LocalnetError when it is not installed."""
    binary = shutil.which(TEST_VALIDATOR)
    if binary is None:
        raise LocalnetError(f"{TEST_VALIDATOR} is not on PATH; install the Solana CLI or use --engine litesvm")
    from ghostpay.artifacts import PROGRAM_SO
    from ghostpay.program_id import PROGRAM_ID

    program_so = str(config.program_so) if config.program_so is not None else str(PROGRAM_SO)
    command = validator_command(config, program_so, str(PROGRAM_ID), binary)
    config.ledger_dir.mkdir(parents=True, exist_ok=True)
    if not config.quiet:
        print(" ".join(command), flush=True)
    os.execv(binary, command)
