"""The blocking `GhostPay` is typed: ghostpay/sync_client.pyi spells out every method it makes from the
async client's coroutines, is what `python -m tools.sync_stub` writes today, and names only types that exist."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

from ghostpay.client import GhostPayClient
from ghostpay.sync_client import GhostPay
from tools import sync_stub


def stub_class() -> type:
    """The stub's `GhostPay`, executed (annotations kept as text, then resolved one by one by the caller)."""
    namespace: dict[str, typing.Any] = {}
    exec(
        compile("from __future__ import annotations\n" + sync_stub.STUB_PATH.read_text(), "sync_client.pyi", "exec"),
        namespace,
    )
    return namespace["GhostPay"]


def test_the_stub_is_fresh() -> None:
    assert sync_stub.STUB_PATH.read_text() == sync_stub.render(), "stale: run python -m tools.sync_stub"


def test_the_stub_types_every_blocking_method_as_the_client_does() -> None:
    typed = stub_class()
    coroutines = {
        n for n, _ in inspect.getmembers(GhostPayClient, inspect.iscoroutinefunction) if not n.startswith("_")
    }
    assert coroutines <= set(vars(typed))
    for name in coroutines - set(vars(GhostPay)):  # the client's coroutines, blocking: same parameters
        stub_params = list(inspect.signature(vars(typed)[name]).parameters)
        assert stub_params == list(inspect.signature(getattr(GhostPayClient, name)).parameters), name
    assert {"wallet", "agent_address", "client", "run", "events", "close"} <= set(vars(typed))


def test_every_name_in_the_stub_resolves() -> None:
    typed = stub_class()
    for member in vars(typed).values():
        function = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
        if inspect.isfunction(function):
            typing.get_type_hints(function, globalns=function.__globals__ | {"GhostPay": typed})


def test_the_package_types_its_lazy_names() -> None:
    """`from ghostpay import GhostPay` is typed too: the package's `if TYPE_CHECKING:` imports name exactly
    the names it imports on first use, each from the same module."""
    import ast

    import ghostpay

    tree = ast.parse(Path(ghostpay.__file__).read_text())
    block = next(
        node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
    )
    typed = {alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert typed == ghostpay._EXPORTS
