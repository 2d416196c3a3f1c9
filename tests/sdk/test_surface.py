"""The SDK's public surface: the package exports its clients, values and errors (lazily: `import ghostpay`
stays light), the sync facade shows every method with its signature and docstring, tiers print as names,
and base58 text is accepted wherever a key is."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import ghostpay
from ghostpay.client import GhostPayClient
from ghostpay.exceptions import InvalidArgument
from ghostpay.reputation import Tier
from ghostpay.sync_client import GhostPay
from tests.sdk.conftest import fund


def test_the_package_exports_the_public_surface() -> None:
    from ghostpay import AgentInfo, GhostPayError, OutcomeUnknown, PaymentResult, ProgramError, X402Settings  # noqa: F401

    assert ghostpay.GhostPayClient is GhostPayClient and ghostpay.GhostPay is GhostPay
    assert set(ghostpay.__all__) <= set(dir(ghostpay))
    for name in ghostpay.__all__:
        assert getattr(ghostpay, name) is not None
    with pytest.raises(AttributeError):
        ghostpay.NoSuchThing
    probe = "import sys, ghostpay; print(sorted(m for m in ('solana', 'solders', 'anchorpy') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]"  # nothing heavy until a name is used


def test_the_sync_facade_shows_every_method() -> None:
    coroutines = {
        n for n, m in inspect.getmembers(GhostPayClient, inspect.iscoroutinefunction) if not n.startswith("_")
    }
    for name in coroutines:
        method = getattr(GhostPay, name)
        assert method.__doc__, name
        if name != "close":  # the facade's own close also stops its loop thread
            assert method.__doc__ == getattr(GhostPayClient, name).__doc__, name
        assert not inspect.iscoroutinefunction(method), name
        if name not in ("close", "events"):
            assert inspect.signature(method) == inspect.signature(getattr(GhostPayClient, name)), name
    for name, member in inspect.getmembers(GhostPayClient):
        if not name.startswith("_"):
            assert inspect.getdoc(member), f"GhostPayClient.{name} has no docstring"


def test_facade_dir_and_plain_attributes(net) -> None:
    with GhostPay(net.http_url, fund(net)) as gp:
        assert {"pay_agent", "wallet", "agent_address", "create_work_order"} <= set(dir(gp))
        assert gp.get_agent_pricing.__doc__ and gp.wallet == gp.client.wallet
        assert gp.agent_address("mine") == gp.client.agent_address("mine")


def test_tiers_print_as_names() -> None:
    assert str(Tier.ELITE) == "ELITE" and f"{Tier.LEGENDARY:>10}" == " LEGENDARY" and Tier.ELITE == "ELITE"


async def test_base58_text_wherever_a_key_is(net, usdc) -> None:
    async with GhostPayClient(net.http_url, fund(net)) as gp:
        assert await gp.get_token_balance(str(gp.wallet), str(usdc)) == 0
        assert await gp.list_work_orders(client=str(gp.wallet), mint=str(usdc)) == []
        assert gp.agent_address(str(gp.wallet)) == gp.wallet  # an address, not an agent_id
        with pytest.raises(InvalidArgument, match="not a valid arbiter"):
            await gp.create_work_order(gp.wallet, 1, deadline=0, arbiter="nope", title="t")
        with pytest.raises(InvalidArgument, match="not a valid agent address"):
            gp.agent_address("7TEwzMaWGGR4yJg2F4eG186xu1uGAsS6mb178CB9dp0")
