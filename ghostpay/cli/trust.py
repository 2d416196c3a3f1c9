"""`ghost indexer trust`: the trusted mints and pre-trusted seeds of an index's trust score, changed and shown; the
score recomputed on demand (a running indexer recomputes it after its back-fill and then at most once a minute)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from ghostpay.cli.indexing import fail, index_engine, indexer_config

URL_HELP = "RPC URL or moniker: labels and decimals of the mints are read from it."
DB_HELP = (
    "A SQLite path, sqlite:///path.db or postgresql://user@host/db (default: indexer.db in the ghost data folder)."
)


def _rpc(url: str, method: str, *params: object) -> object:
    import httpx

    try:
        answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=10)
        return answer.json()["result"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        fail(f"{url}: {method} failed ({exc}); is the RPC reachable?")


def _mint(engine: object, http_url: str, token: str) -> tuple[str, str | None, int | None]:
    """(mint, label, decimals) of a mint address or a token label of the indexed chain."""
    from ghostpay.exceptions import GhostPayError
    from ghostpay.indexer.guard import indexed_chain
    from ghostpay.token_labels import TokenLabels, is_address

    genesis = indexed_chain(engine) or str(_rpc(http_url, "getGenesisHash"))  # type: ignore[arg-type]
    labels = TokenLabels().cluster(genesis, http_url)
    try:
        mint = labels.mint(token, "--add/--remove")
    except GhostPayError as exc:
        fail(str(exc))
    supply = _rpc(http_url, "getTokenSupply", mint) if is_address(mint) else None
    decimals = int(supply["value"]["decimals"]) if isinstance(supply, dict) else None
    return mint, labels.label(mint), decimals


def trust(
    url: str = typer.Option("http://127.0.0.1:8899", "--url", "-u", help=URL_HELP),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    add: list[str] | None = typer.Option(None, "--add", help="Trust this mint too: an address or a token label."),
    remove: list[str] | None = typer.Option(
        None, "--remove", help="Stop trusting this mint, a default one included: an address or a token label."
    ),
    seed: list[str] | None = typer.Option(None, "--seed", help="Make this wallet a pre-trusted seed (repeatable)."),
    unseed: list[str] | None = typer.Option(None, "--unseed", help="This wallet is no longer a seed."),
    recompute: bool = typer.Option(False, "--recompute", help="Recompute the trust score now."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show or change what the trust score counts: the trusted mints (default: USDC, USDT and PYUSD on
    mainnet-beta, USDC on devnet, the test mints labelled on a localnet) and the pre-trusted seeds (default:
    none, and every payer in a trusted mint counts alike: EigenTrust; with seeds the score is SybilRank, trust
    spread from them). A change applies at the next recomputation.

    Example: ghost indexer trust --db index.db --add EURC --seed 7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU
    --recompute
    """
    from solders.pubkey import Pubkey

    from ghostpay.indexer import trust as scores

    config = indexer_config(url, None, db)
    engine = index_engine(config.db_url, read_only=True)
    for token in add or []:
        mint, label, decimals = _mint(engine, config.http_url, token)
        scores.set_mint(engine, mint, True, label, decimals)
    for token in remove or []:
        scores.set_mint(engine, _mint(engine, config.http_url, token)[0], False)
    for address in [*(seed or []), *(unseed or [])]:
        try:
            Pubkey.from_string(address)
        except ValueError:
            fail(f"{address!r} is not a wallet address (base58)")
    for address in seed or []:
        scores.set_seed(engine, address, True)
    for address in unseed or []:
        scores.set_seed(engine, address, False)
    if recompute:
        scores.recompute(engine)
    state = scores.read_settings(engine)
    out = {
        "trusted_mints": [{"mint": m.mint, "label": m.label, "decimals": m.decimals} for m in state.trusted.values()],
        "removed": state.removed,
        "seeds": state.seeds,
        "computed_at": state.computed_at,
        "agents_with_trust": state.agents_with_trust,
    }
    if json_output:
        print(json.dumps(out))
        return
    for m in state.trusted.values():
        typer.echo(f"trusted  {m.label or '':<8} {m.mint}")
    for mint in state.removed:
        typer.echo(f"removed  {'':<8} {mint}")
    typer.echo(f"seeds    {', '.join(state.seeds) or 'none: every payer in a trusted mint counts alike'}")
    when = (
        datetime.fromtimestamp(state.computed_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if state.computed_at
        else "never"
    )
    typer.echo(f"computed {when}, {state.agents_with_trust:,} agent(s) with trust")
