"""`ghost facilitator start`: serve an x402 facilitator (verify, settle, supported, policy, health) that
pays the fees of exact-SVM payments with the `-k` keypair on the `-u` cluster, within its operator's
policy; `ghost facilitator keys add/list/revoke`: the sellers it serves."""

from __future__ import annotations

import json
import logging
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ghostpay.cli.context import CliError, state
from ghostpay.cli.output import emit, key_value_table, table
from ghostpay.cli.serving import serve_app
from ghostpay.x402.facilitator.defaults import (
    DEFAULT_FEE_LAMPORTS_PER_DAY,
    DEFAULT_MAX_COMPUTE_UNITS,
    DEFAULT_MAX_FEE_LAMPORTS,
    DEFAULT_MAX_FEE_SHARE,
    DEFAULT_MAX_RENT_OUTSTANDING,
    DEFAULT_SETTLES_PER_MINUTE,
    DEFAULT_SOL_USD,
)

if TYPE_CHECKING:
    from ghostpay.x402.facilitator.keys import KeyStore, SellerKey

app = typer.Typer(help="An x402 facilitator: verifies and settles payments, paying their fees.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Seller keys: who may have payments settled, with which rent fronting and quotas.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
DEFAULT_PORT = 8403
DB_HELP = (
    "The facilitator's database: a SQLite file (default: <ghost path>/facilitator.db) or postgresql://… "
    "(shared by facilitator replicas)."
)
LOOPBACK_ONLY_NOTE = (
    "no seller key configured: serving loopback clients only (add one with ghost facilitator keys add NAME)"
)


def parse_decimal(value: str, what: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise typer.BadParameter(f"not {what}: {value!r}") from None
    if not number.is_finite() or number < 0:
        raise typer.BadParameter(f"not {what}: {value!r}")
    return number


def parse_sol(value: str) -> int:
    """Lamports of an amount of SOL."""
    return int(parse_decimal(value, "an amount of SOL") * 1_000_000_000)


@app.command()
def start(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(DEFAULT_PORT, help="Port to listen on."),
    network: str | None = typer.Option(
        None,
        help="The x402 network it settles, a CAIP-2 id or v1 name "
        "(default: the -u cluster's; a localnet goes by devnet's).",
    ),
    db: str | None = typer.Option(
        None,
        help="The settled-payment log, seller keys and quotas: a SQLite file (default: <ghost path>/facilitator.db) "
        "or postgresql://user@host/db, which several facilitators (replicas, same fee payer or one each) share: "
        "each payment is then settled once, and a replica that dies has its settles finished by another.",
    ),
    rate_limit: int = typer.Option(120, min=1, help="Verify (and, apart, settle) requests per payer per window."),
    rate_window: float = typer.Option(60.0, min=0.001, help="The rate-limit window in seconds."),
    min_balance: str = typer.Option(
        "0.01",
        help="Refuse to pay fees that would take the fee payer under this "
        "much SOL (each settle's fee and fronted rent counted before its send).",
    ),
    confirm_timeout: float = typer.Option(30.0, min=1, help="Seconds to wait for a settled payment to confirm."),
    record: bool = typer.Option(
        True,
        "--record/--no-record",
        help="Accept GhostPay's record_x402_payment right after the Memo (advertised in /supported).",
    ),
    front_rent: bool = typer.Option(
        True,
        "--front-rent/--no-front-rent",
        help="Let the fee payer pay the "
        "rent of a buyer's PayerStats (the record's rent payer): once per buyer "
        "and agent, with the pair's first payment; never per payment.",
    ),
    sweep_interval: float = typer.Option(
        60.0,
        min=0,
        help="Seconds between passes closing the legacy receipts "
        "(made before PayerStats) whose rent it fronted, once they may be "
        "closed; the sweep ends when none is left (0: no sweep).",
    ),
    max_fee: int = typer.Option(
        DEFAULT_MAX_FEE_LAMPORTS,
        min=0,
        help="Refuse a payment whose fee (5,000 lamports "
        "a signature + CU limit × CU price / 10^6) is over this many lamports.",
    ),
    max_compute_units: int = typer.Option(
        DEFAULT_MAX_COMPUTE_UNITS,
        min=0,
        help="Refuse a payment whose "
        "compute-unit limit is over this (official client: 20,000; with "
        "GhostPay's record instruction: 28,000).",
    ),
    max_fee_share: str = typer.Option(
        str(DEFAULT_MAX_FEE_SHARE),
        help="For a USD stablecoin, refuse a payment "
        "whose fee is worth more than this share of it (1: the fee may cost what "
        "the payment is worth).",
    ),
    sol_price: str = typer.Option(
        str(DEFAULT_SOL_USD), help="Dollars a SOL is taken to be worth for --max-fee-share (high errs on refusing)."
    ),
    asset: list[str] | None = typer.Option(
        None,
        "--asset",
        help="MINT[=MIN_AMOUNT]: a mint it settles, and "
        "the least amount (atomic units, default 1); repeat it; 'any' "
        "allows every mint. Default: the network's USD stablecoins, and "
        "on a localnet the mints labelled by ghost test-mint.",
    ),
    discovery_refresh: float = typer.Option(
        5.0,
        min=0,
        help="Seconds between looks at the chain for the Bazaar (GET /discovery/resources and "
        "/discovery/search): a newly registered or deactivated agent shows within this time. A look is one "
        "getSignaturesForAddress of the program; the registry is read (getProgramAccounts) only when the "
        "program ran a transaction since (0: no Bazaar, e.g. on an RPC without getProgramAccounts).",
    ),
) -> None:
    """Serve POST /verify, POST /settle, GET /supported, GET /policy, GET /health and the Bazaar (GET
    /discovery/resources, GET /discovery/search: the x402 agents on chain) until Ctrl-C.

    The fee payer is the -k keypair and the cluster is -u. A localnet goes by devnet's network id
    (solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1) so unchanged x402 clients can pay on it. Besides the
    official exact payments it accepts GhostPay's record_x402_payment right after the Memo, and may
    pay the rent of a buyer's PayerStats (once per buyer and agent: nothing is created per payment). Each
    settle is simulated right before its send and logged (--db) with its signature before it: after a crash,
    a retry of the same payment is answered from what landed.

    Until a seller key exists (ghost facilitator keys add NAME) it serves loopback clients only; then
    /verify and /settle need a key. Each refusal has a named reason; GET /policy lists them all.

    Example:  ghost -u localnet -k fee-payer.json facilitator start --port 8403 --max-fee 20000
    """
    floor = parse_sol(min_balance)
    share, sol_usd = parse_decimal(max_fee_share, "a share"), parse_decimal(sol_price, "a price in dollars")
    st = state(ctx)
    from ghostpay.exceptions import InvalidArgument
    from ghostpay.x402.facilitator.policy import FeeLimits, parse_asset
    from ghostpay.x402.networks import is_loopback_url, network_by_id, network_for_cluster

    try:
        rules = tuple(parse_asset(a) for a in asset or ())
    except InvalidArgument as exc:
        raise typer.BadParameter(str(exc), param_hint="--asset") from None

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
    from ghostpay.paths import data_dir
    from ghostpay.program_id import PROGRAM_ID
    from ghostpay.token_labels import LABELS_FILE
    from ghostpay.x402.facilitator import FacilitatorSettings, default_db_path
    from ghostpay.x402.facilitator.app import create_facilitator_app
    from ghostpay.x402.facilitator.database import describe

    program_id = Pubkey.from_string(st.settings.program_id) if st.settings.program_id else PROGRAM_ID
    settings = FacilitatorSettings(
        load_keypair(path),
        st.rpc_url,
        ws_url_for(st.rpc_url),
        networks=(served.caip2,),
        db_path=db_target(db) or default_db_path(),
        rate_limit=rate_limit,
        rate_window_seconds=rate_window,
        min_balance_lamports=floor,
        confirm_timeout_seconds=confirm_timeout,
        program_id=program_id,
        record_extension=record,
        front_receipt_rent=front_rent,
        sweep_interval_seconds=sweep_interval,
        fee_limits=FeeLimits(max_fee, max_compute_units, share, sol_usd),
        assets=rules,
        test_mints=data_dir() / LABELS_FILE if is_loopback_url(st.rpc_url) else None,
        discovery_refresh_seconds=discovery_refresh,
    )
    url = f"http://{host}:{port}"
    keys = open_keys(db)
    auth = "keys" if keys.any_keys() else "loopback-only"
    keys.close()
    announce = {
        "url": url,
        "feePayer": str(settings.fee_payer),
        "network": served.caip2,
        "rpcUrl": st.rpc_url,
        "db": describe(settings.db_path),
        "record": record,
        "frontRent": front_rent,
        "auth": auth,
        "maxFeeLamports": max_fee,
        "maxComputeUnits": max_compute_units,
        "assets": [a.mint for a in rules] or "default",
        "discoveryRefreshSeconds": discovery_refresh,
    }
    log_refusals()

    def say_listening() -> None:
        if st.json:
            print(json.dumps({"running": True, **announce}), flush=True)
            return
        print(
            f"facilitator listening on {url} (fee payer {announce['feePayer']}, network "
            f"{served.caip2} on {st.rpc_url}); Ctrl-C stops it",
            flush=True,
        )
        if auth == "loopback-only":
            print(LOOPBACK_ONLY_NOTE, flush=True)

    serve_app(create_facilitator_app(settings), host, port, say_listening, "the facilitator")


def log_refusals() -> None:
    """Refusals (named reasons) to stderr: one line each, for the operator."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("ghostpay.x402")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def db_target(db: str | None) -> Path | str | None:
    """`--db` as the stores take it: a PostgreSQL URL as is, anything else a SQLite file's path."""
    from ghostpay.x402.facilitator.database import is_postgres

    return None if db is None else db if is_postgres(db) else Path(db)


def open_keys(db: str | None) -> KeyStore:
    from ghostpay.x402.facilitator import default_db_path
    from ghostpay.x402.facilitator.database import DatabaseError
    from ghostpay.x402.facilitator.keys import KeyStore

    try:
        return KeyStore(db_target(db) or default_db_path())
    except DatabaseError as exc:
        raise CliError(f"the facilitator's database: {exc}") from None


def key_rows(keys: list[SellerKey]) -> list[dict[str, object]]:
    return [{**k.terms(), "createdAt": k.created_at, "revoked": k.revoked_at is not None} for k in keys]


@keys_app.command("add")
def keys_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The seller's name (unique)."),
    front_rent: bool = typer.Option(
        False,
        "--front-rent",
        help="Let the fee payer pay this seller's receipts' rent (GhostPay's record instruction); off by default.",
    ),
    max_rent_outstanding: str = typer.Option(
        str(Decimal(DEFAULT_MAX_RENT_OUTSTANDING).scaleb(-9)),
        help="SOL of fronted receipt rent not yet swept back, at most (with --front-rent).",
    ),
    settles_per_minute: int = typer.Option(DEFAULT_SETTLES_PER_MINUTE, min=0, help="Settles in any minute, at most."),
    fee_lamports_per_day: int = typer.Option(
        DEFAULT_FEE_LAMPORTS_PER_DAY, min=0, help="Fee lamports paid for this seller in any 24 hours, at most."
    ),
    db: str | None = typer.Option(None, help=DB_HELP),
) -> None:
    """Make a key for a seller and print it, once: only its SHA-256 is stored.

    The seller sends it as 'Authorization: Bearer KEY' (the official x402 client's create_headers), or
    signs each request with it (GhostPay's middleware, proxy and SDK: --facilitator-key-file). A running
    facilitator takes it at once: from the first key on, only sellers with a key are served.

    Example:  ghost facilitator keys add alice --front-rent --max-rent-outstanding 0.1 --settles-per-minute 120
    """
    st = state(ctx)
    from ghostpay.x402.facilitator.keys import KeyStoreError

    try:
        seller, key = open_keys(db).add(
            name,
            front_rent=front_rent,
            max_rent_outstanding=parse_sol(max_rent_outstanding),
            settles_per_minute=settles_per_minute,
            fee_lamports_per_day=fee_lamports_per_day,
        )
    except KeyStoreError as exc:
        raise CliError(str(exc)) from None
    data = {"key": key, **key_rows([seller])[0]}
    emit(
        st,
        data,
        lambda out: out.print(
            key_value_table(
                [
                    ("key", key),
                    ("name", seller.name),
                    ("front rent", "yes" if seller.front_rent else "no"),
                    ("max rent outstanding", f"{seller.max_rent_outstanding:,} lamports"),
                    ("settles per minute", str(seller.settles_per_minute)),
                    ("fee per day", f"{seller.fee_lamports_per_day:,} lamports"),
                ],
                title="[green]✔[/green] seller key added: store the key now, it is not shown again",
            )
        ),
    )


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Same as ghost --output json facilitator keys list."),
    db: str | None = typer.Option(None, help=DB_HELP),
) -> None:
    """The seller keys (never the keys themselves): name, id, terms, revoked or not.

    Example:  ghost facilitator keys list --json
    """
    st = state(ctx)
    if json_output:
        st.settings.output = "json"
    keys = open_keys(db).entries()
    if not keys and not st.json:
        print("no seller keys: the facilitator serves loopback clients only (ghost facilitator keys add NAME)")
        return
    emit(
        st,
        key_rows(keys),
        lambda out: out.print(
            table(
                ["name", "id", "front rent", "max rent outstanding", "settles/min", "fee lamports/day", "status"],
                [
                    [
                        k.name,
                        k.key_id,
                        "yes" if k.front_rent else "no",
                        f"{k.max_rent_outstanding:,}",
                        k.settles_per_minute,
                        f"{k.fee_lamports_per_day:,}",
                        "revoked" if k.revoked_at is not None else "active",
                    ]
                    for k in keys
                ],
                title="seller keys",
            )
        ),
    )


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The seller whose key stops working."),
    db: str | None = typer.Option(None, help=DB_HELP),
) -> None:
    """Revoke a seller's key: a running facilitator refuses it from the next request on.

    Example:  ghost facilitator keys revoke alice
    """
    st = state(ctx)
    from ghostpay.x402.facilitator.keys import KeyStoreError

    try:
        seller = open_keys(db).revoke(name)
    except KeyStoreError as exc:
        raise CliError(str(exc)) from None
    emit(
        st,
        key_rows([seller])[0],
        lambda out: out.print(f"[green]✔[/green] key {seller.name!r} ({seller.key_id}) revoked"),
    )
