"""`python -m ghostpay.localnet`: the same options as `ghost localnet start`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ghostpay.localnet.server import LocalnetConfig, LocalnetError, default_ledger


def parse(argv: list[str] | None = None) -> tuple[LocalnetConfig, str]:
    parser = argparse.ArgumentParser(
        prog="python -m ghostpay.localnet", description="A local Solana validator on LiteSVM with GhostPay loaded."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rpc-port", type=int, default=8899)
    parser.add_argument("--ws-port", type=int, default=None, help="default: RPC port + 1")
    parser.add_argument("--ledger", type=Path, default=None, help=f"default: {default_ledger()}")
    parser.add_argument("--reset", action="store_true", help="start from an empty ledger")
    parser.add_argument("--program-so", type=Path, default=None, help="load this GhostPay build instead")
    parser.add_argument("--engine", choices=("litesvm", "solana-test-validator"), default="litesvm")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    ws_port = args.ws_port if args.ws_port is not None else args.rpc_port + 1
    return LocalnetConfig(
        args.host, args.rpc_port, ws_port, args.ledger, args.reset, args.program_so, args.quiet
    ), args.engine


def main(argv: list[str] | None = None) -> int:
    config, engine = parse(argv)
    try:
        if engine == "solana-test-validator":
            from ghostpay.localnet.engine import run_test_validator

            run_test_validator(config)
        from ghostpay.localnet.server import run

        run(config)
    except LocalnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
