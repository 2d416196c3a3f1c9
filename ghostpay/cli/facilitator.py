"""`ghost facilitator start`: serve an x402 facilitator (verify, settle, supported, health) that pays
the fees of exact-SVM payments with the `-k` keypair on the `-u` cluster."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Optional

import typer

from ghostpay.cli.context import CliError, state
from ghostpay.cli.serving import serve_app

app = typer.Typer(help="An x402 facilitator: verifies and settles payments, paying their fees.",
                  no_args_is_help=True)
DEFAULT_PORT = 8403


def parse_sol(value: str) -> int:
    try:
        sol = Decimal(value)
    except InvalidOperation:
        raise typer.BadParameter(f"not an amount of SOL: {value!r}") from None
    if not sol.is_finite() or sol < 0:
        raise typer.BadParameter(f"not an amount of SOL: {value!r}")
    return int(sol * 1_000_000_000)


@app.command()
def start(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(DEFAULT_PORT, help="Port to listen on."),
    network: Optional[str] = typer.Option(None, help="The x402 network it settles, a CAIP-2 id or v1 name "
                                          "(default: the -u cluster's; a localnet goes by devnet's)."),
    db: Optional[Path] = typer.Option(None, help="The settled-payment log (default: <ghost path>/facilitator.db)."),
    rate_limit: int = typer.Option(120, min=1, help="Verify (and, apart, settle) requests per payer per window."),
    rate_window: float = typer.Option(60.0, min=0.001, help="The rate-limit window in seconds."),
    min_balance: str = typer.Option("0.01", help="Refuse to pay fees while the fee payer holds less SOL."),
    confirm_timeout: float = typer.Option(30.0, min=1, help="Seconds to wait for a settled payment to confirm."),
    simulation_reuse: float = typer.Option(2.0, min=0, help="Seconds within which settle reuses verify's "
                                           "simulation of the same signed payment (0: simulate again)."),
    record: bool = typer.Option(True, "--record/--no-record", help="Accept GhostPay's record_x402_payment right "
                                "after the Memo (advertised in /supported)."),
    front_rent: bool = typer.Option(True, "--front-rent/--no-front-rent", help="Let the fee payer pay the "
                                    "rent of a buyer's PayerStats (the record's rent payer): once per buyer "
                                    "and agent, with the pair's first payment; never per payment."),
    sweep_interval: float = typer.Option(60.0, min=0, help="Seconds between passes closing the legacy receipts "
                                         "(made before PayerStats) whose rent it fronted, once they may be "
                                         "closed; the sweep ends when none is left (0: no sweep)."),
) -> None:
    """Serve POST /verify, POST /settle, GET /supported and GET /health until Ctrl-C.

    The fee payer is the -k keypair and the cluster is -u. A localnet goes by devnet's network id
    (solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1) so unchanged x402 clients can pay on it. Besides the
    official exact payments it accepts GhostPay's record_x402_payment right after the Memo, and may
    pay the rent of a buyer's PayerStats (once per buyer and agent: nothing is created per payment).

    Example:  ghost -u localnet -k fee-payer.json facilitator start --port 8403
    """
    floor = parse_sol(min_balance)
    st = state(ctx)
    from ghostpay.exceptions import InvalidArgument
    from ghostpay.x402.networks import network_by_id, network_for_cluster

    try:
        served = network_by_id(network) if network else network_for_cluster(st.rpc_url)
    except InvalidArgument as exc:
        raise typer.BadParameter(str(exc), param_hint="--network") from None
    path = st.keypair_path()
    if not path.exists():
        raise CliError(f"keypair file {path} not found; the facilitator pays fees with it (-k/--keypair FILE)")
    from solders.pubkey import Pubkey

    from ghostpay.cluster import ws_url_for
    from ghostpay.keypairs import load_keypair
    from ghostpay.program_id import PROGRAM_ID
    from ghostpay.x402.facilitator import FacilitatorSettings, default_db_path
    from ghostpay.x402.facilitator_app import create_facilitator_app

    program_id = Pubkey.from_string(st.settings.program_id) if st.settings.program_id else PROGRAM_ID
    settings = FacilitatorSettings(
        load_keypair(path), st.rpc_url, ws_url_for(st.rpc_url), networks=(served.caip2,),
        db_path=db or default_db_path(), rate_limit=rate_limit, rate_window_seconds=rate_window,
        min_balance_lamports=floor, confirm_timeout_seconds=confirm_timeout,
        simulation_reuse_seconds=simulation_reuse, program_id=program_id,
        record_extension=record, front_receipt_rent=front_rent, sweep_interval_seconds=sweep_interval)
    url = f"http://{host}:{port}"
    announce = {"url": url, "feePayer": str(settings.fee_payer), "network": served.caip2, "rpcUrl": st.rpc_url,
                "db": str(settings.db_path), "record": record, "frontRent": front_rent}

    def say_listening() -> None:
        if st.json:
            print(json.dumps({"running": True, **announce}), flush=True)
        else:
            print(f"facilitator listening on {url} (fee payer {announce['feePayer']}, network "
                  f"{served.caip2} on {st.rpc_url}); Ctrl-C stops it", flush=True)

    serve_app(create_facilitator_app(settings), host, port, say_listening, "the facilitator")
