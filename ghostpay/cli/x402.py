"""`ghost x402`: sell and buy HTTP calls with x402 payments."""

from __future__ import annotations

import asyncio
import json
from typing import List, Optional

import typer

from ghostpay.cli import params
from ghostpay.cli.context import CliError, state
from ghostpay.cli.facilitator import KEEP_ALIVE_SECONDS, listening_socket

app = typer.Typer(help="HTTP calls paid with x402: sell an API behind a paywall, pay for calls.",
                  no_args_is_help=True)
DEFAULT_FACILITATOR = "http://127.0.0.1:8403"


@app.command()
def proxy(
    ctx: typer.Context,
    agent: str = typer.Option(..., "--agent", "-a", help="The agent whose on-chain price the calls cost "
                                                          "(address, or agent_id of your wallet's agent)."),
    upstream: str = typer.Option(..., "--upstream", help="The HTTP service to sell, e.g. http://127.0.0.1:9000."),
    route: Optional[List[str]] = typer.Option(None, "--route", "-r", help="A priced route, 'METHOD /path' or "
                                              "'/path/*' (repeat it); default: every route."),
    facilitator: str = typer.Option(DEFAULT_FACILITATOR, "--facilitator", help="The x402 facilitator's URL."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8402, help="Port to listen on."),
    create_payee_accounts: bool = typer.Option(False, "--create-payee-accounts", help="Create the payment "
                                               "address's missing token accounts (paid by -k) instead of "
                                               "refusing to start."),
    max_timeout: int = typer.Option(60, min=5, help="Seconds a buyer has to pay (maxTimeoutSeconds)."),
    stats_route: Optional[str] = typer.Option(None, help="Serve the paid calls' statuses and latencies as JSON "
                                              "at this path, e.g. /_x402/stats (not forwarded)."),
) -> None:
    """Put the agent's on-chain x402 price in front of any HTTP service.

    Calls to a priced route answer 402 until paid; paid ones go to the upstream, whose answer streams
    back with PAYMENT-RESPONSE. A price change on chain applies to the next 402. The upstream sees the
    payer in X-GhostPay-Payer (also -Amount, -Mint, -Verified).

    Example:  ghost x402 proxy --agent translator --upstream http://127.0.0.1:9000 --route 'POST /translate'
    """
    ref = params.agent_ref(agent)
    if not upstream.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{upstream!r} is not an http(s) URL", param_hint="--upstream")
    st = state(ctx)
    import uvicorn

    from ghostpay.cluster import ws_url_for
    from ghostpay.keypairs import load_keypair
    from ghostpay.x402.proxy import ProxySettings, create_proxy_app
    from ghostpay.x402.seller_offer import PaywallError

    path = st.keypair_path()
    keypair = load_keypair(path) if path.exists() else None
    if isinstance(ref, str):
        if keypair is None:
            raise CliError(f"agent {ref!r} is an agent_id: it needs your keypair ({path} not found); "
                           "pass the agent's address instead")
        from ghostpay.pda import agent_address as derive

        ref = derive(keypair.pubkey(), ref)[0]
    if create_payee_accounts and keypair is None:
        raise CliError(f"--create-payee-accounts pays with your keypair, and {path} is not found")
    from ghostpay.x402.seller import SellerSettings

    seller = SellerSettings(ref, st.rpc_url, facilitator, tuple(route or ("*",)), ws_url_for(st.rpc_url),
                            max_timeout_seconds=max_timeout,
                            payee_accounts="create" if create_payee_accounts else "check", keypair=keypair,
                            stats_route=stats_route)
    app_ = create_proxy_app(ProxySettings(upstream, seller))
    server = uvicorn.Server(uvicorn.Config(app_, host=host, port=port, log_level="warning", access_log=False,
                                           ws="none", timeout_keep_alive=KEEP_ALIVE_SECONDS))
    url = f"http://{host}:{port}"

    sock = listening_socket(host, port)

    async def main() -> None:
        try:
            await app_.seller.start()
        except PaywallError as exc:
            raise CliError(str(exc)) from None
        offer = app_.seller.watch.offer
        prices = [{"mint": str(p.mint.address), "amount": p.amount, "decimals": p.mint.decimals}
                  for p in (offer.prices if offer else ())]
        announce = {"url": url, "agent": str(ref), "upstream": upstream, "routes": list(seller.routes),
                    "network": app_.seller.network.caip2, "facilitator": facilitator, "prices": prices}
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        if server.started:
            if st.json:
                print(json.dumps({"running": True, **announce}), flush=True)
            else:
                unavailable = offer.unavailable if offer else None
                print(f"x402 proxy on {url} → {upstream} for agent {ref} ({', '.join(seller.routes)})"
                      + (f"; note: {unavailable}, calls answer 503 until that changes" if unavailable else "")
                      + "; Ctrl-C stops it", flush=True)
        await serving

    asyncio.run(main())
