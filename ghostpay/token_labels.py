"""Token labels: short names ("USDC") that stand for mints, on one cluster each.

A cluster is named by its genesis hash, whichever RPC endpoint serves it: "USDC" is EPjF… on
mainnet-beta, 4zMM… on devnet, and on a localnet the test mint `ghost test-mint --symbol USDC` made
there (a localnet's genesis is new with each ledger, so its labels go with its mints). A label that
is not one of the cluster's is refused (`UnknownTokenLabel`, naming where it does exist), never
taken from another cluster.

Well-known mints are built in per network (`WELL_KNOWN`); the user's labels live in
`token-labels.json` in the data folder (0600), per genesis hash:

    {"version": 1, "clusters": {"<genesis hash>": {"url": "http://127.0.0.1:8899",
                                                   "labels": {"USDC": {"mint": "…", "test_mint": true}}}}}

    >>> TokenLabels("/nonexistent/labels.json").cluster(MAINNET_GENESIS).mint("usdc")
    'EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v'

Labels are case-insensitive when looked up and kept as written. This module needs only the standard
library (and `based58`): the CLI resolves labels without importing the Solana stack.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import based58

from ghostpay.paths import data_dir, private_dir, private_file

MAINNET_GENESIS = "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d"
DEVNET_GENESIS = "EtWTRABZaYq6iMfeYKouRu166VU2xqa1wcaWoxPkrZBG"
NETWORKS = {MAINNET_GENESIS: "mainnet-beta", DEVNET_GENESIS: "devnet"}  # the public clusters, by genesis hash
WELL_KNOWN: dict[str, dict[str, str]] = {
    MAINNET_GENESIS: {
        "USDC": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        "USDT": "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB",
        "PYUSD": "2b1kV6DkPAnxd5ixfnxCpjxmKwqjjaYmCZfHsFu24GXo",
    },
    DEVNET_GENESIS: {"USDC": "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU"},
}
LABELS_FILE = "token-labels.json"
FORMAT_VERSION = 1
# Letters, digits, '-' and '_', at most 16: never base58 of 32 bytes (32+ characters), no '=' or ',' (the
# CLI's `--tokens USDC=0.01,EURC=0.01`), no '.' (config keys like `x402.daily_budget.USDC`).
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}")
ADDRESS_BYTES = 32

WELL_KNOWN_SOURCE, USER_SOURCE, TEST_MINT_SOURCE = "well-known", "user", "test-mint"


def is_address(text: str) -> bool:
    """Whether `text` is base58 of 32 bytes (a public key)."""
    try:
        return len(based58.b58decode(text.strip().encode())) == ADDRESS_BYTES
    except Exception:  # noqa: BLE001 - based58 raises its own error for characters outside the alphabet
        return False


def is_label(text: str) -> bool:
    """Whether `text` is shaped like a token label (it may still be unknown on a cluster)."""
    return LABEL.fullmatch(text) is not None


def cluster_name(genesis_hash: str, url: str | None = None) -> str:
    """`mainnet-beta`, `devnet`, else the cluster's URL and the start of its genesis hash."""
    if genesis_hash in NETWORKS:
        return NETWORKS[genesis_hash]
    where = f"the cluster at {url}" if url else "the cluster"
    return f"{where} (genesis {genesis_hash[:8]}…)"


def short(key: str) -> str:
    return key if len(key) <= 12 else f"{key[:4]}…{key[-4:]}"


def _invalid(message: str) -> Exception:
    from ghostpay.exceptions import InvalidArgument  # the SDK's hierarchy, imported when something is wrong

    return InvalidArgument(message)


@dataclass(frozen=True)
class TokenLabel:
    """One label of a cluster: the mint it names and where it comes from (well-known, user, test-mint)."""

    label: str
    mint: str
    source: str

    @property
    def test_mint(self) -> bool:
        return self.source == TEST_MINT_SOURCE


@dataclass(frozen=True)
class ClusterLabels:
    """The labels of one cluster: well-known ones first, then the user's, each label once."""

    genesis_hash: str
    url: str | None
    labels: tuple[TokenLabel, ...]
    elsewhere: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict, repr=False)
    """label (case-folded) -> (cluster name, mint) where it names a mint on another cluster (for errors)."""

    @property
    def name(self) -> str:
        return cluster_name(self.genesis_hash, self.url)

    def find(self, label: str) -> TokenLabel | None:
        """The label of this cluster spelt `label` (any case), or None."""
        wanted = label.strip().casefold()
        return next((entry for entry in self.labels if entry.label.casefold() == wanted), None)

    def mint(self, token: str, what: str = "token") -> str:
        """The mint address `token` names here: an address as it is, a label resolved; `UnknownTokenLabel`
        for a label this cluster does not have, `InvalidArgument` for text that is neither."""
        text = token.strip()
        if is_address(text):
            return text
        if not is_label(text):
            raise _invalid(f"{what} {token!r} is neither a mint address (base58, 32 bytes) nor a token label")
        found = self.find(text)
        if found is None:
            raise self.unknown(text, what)
        return found.mint

    def label(self, mint: object) -> str | None:
        """The label of `mint` here, or None."""
        key = str(mint)
        return next((entry.label for entry in self.labels if entry.mint == key), None)

    @property
    def by_mint(self) -> dict[str, str]:
        """mint -> label, for showing mints by name."""
        return {entry.mint: entry.label for entry in reversed(self.labels)}  # a well-known label wins

    def test_mints(self) -> dict[str, str]:
        """label -> mint of the test mints `ghost test-mint --symbol` labelled on this cluster."""
        return {entry.label: entry.mint for entry in self.labels if entry.test_mint}

    def unknown(self, label: str, what: str = "token") -> Exception:
        """The error for a label this cluster does not have, saying where it does exist and what to do."""
        from ghostpay.exceptions import UnknownTokenLabel

        others = self.elsewhere.get(label.casefold(), ())
        if others:
            places = ", ".join(f"{where} ({short(mint)})" for where, mint in others)
            said = f"{what} {label} names a mint on {places}, not on {self.name}"
        else:
            here = ", ".join(entry.label for entry in self.labels) or "none yet"
            said = f"{what} {label} is not a token label on {self.name} (its labels: {here})"
        return UnknownTokenLabel(
            f"{said}; give the mint's address, or label a mint here with 'ghost tokens add {label} MINT'",
            label=label,
            cluster=self.name,
            elsewhere=[where for where, _ in others],
            what=what,
        )


class TokenLabels:
    """The label store: the built-in well-known mints plus the user's labels in `path` (default: the data
    folder's `token-labels.json`). Reads follow the file as it changes; writes are atomic and serialized
    across processes by a lock file beside it."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else data_dir() / LABELS_FILE
        self._cache: tuple[tuple[int, int], dict[str, Any]] | None = None
        self._version: tuple[int, int] | None = None  # the file as last read (None: there was none)
        # (genesis hash, url) -> its ClusterLabels, built from the file at _clusters_version (a paid call asks twice)
        self._clusters: dict[tuple[str, str | None], ClusterLabels] = {}
        self._clusters_version: tuple[int, int] | None = None

    # reading ------------------------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._version = None
            return {"version": FORMAT_VERSION, "clusters": {}}
        key = self._version = (stat.st_mtime_ns, stat.st_size)
        if self._cache is None or self._cache[0] != key:
            try:
                data = json.loads(self.path.read_text() or "{}")
            except (OSError, ValueError) as exc:
                raise _invalid(f"cannot read the token labels in {self.path}: {exc}; fix or delete it") from None
            data.setdefault("clusters", {})
            self._cache = (key, data)
        return self._cache[1]

    def _user(self, data: Mapping[str, Any], genesis_hash: str) -> list[TokenLabel]:
        labels = data["clusters"].get(genesis_hash, {}).get("labels", {})
        return [
            TokenLabel(label, entry["mint"], TEST_MINT_SOURCE if entry.get("test_mint") else USER_SOURCE)
            for label, entry in sorted(labels.items(), key=lambda kv: kv[0].casefold())
        ]

    def cluster(self, genesis_hash: str, url: str | None = None) -> ClusterLabels:
        """The labels of the cluster whose genesis hash is `genesis_hash` (`url` names it in messages; the
        last URL a label was added through is used without it)."""
        data = self._read()
        if self._clusters_version != self._version:
            self._clusters, self._clusters_version = {}, self._version
        built = self._clusters.get((genesis_hash, url))
        if built is None:
            built = self._clusters[(genesis_hash, url)] = self._build(data, genesis_hash, url)
        return built

    def _build(self, data: Mapping[str, Any], genesis_hash: str, url: str | None) -> ClusterLabels:
        known = [TokenLabel(label, mint, WELL_KNOWN_SOURCE) for label, mint in WELL_KNOWN.get(genesis_hash, {}).items()]
        taken = {entry.label.casefold() for entry in known}
        labels = known + [entry for entry in self._user(data, genesis_hash) if entry.label.casefold() not in taken]
        elsewhere: dict[str, list[tuple[str, str]]] = {}
        for other in [*WELL_KNOWN, *data["clusters"]]:
            if other == genesis_hash:
                continue
            name = cluster_name(other, data["clusters"].get(other, {}).get("url"))
            entries = [(label, mint) for label, mint in WELL_KNOWN.get(other, {}).items()] + [
                (entry.label, entry.mint) for entry in self._user(data, other)
            ]
            for label, mint in entries:
                if (name, mint) not in elsewhere.get(label.casefold(), []):
                    elsewhere.setdefault(label.casefold(), []).append((name, mint))
        stored_url = data["clusters"].get(genesis_hash, {}).get("url")
        return ClusterLabels(
            genesis_hash,
            url or stored_url,
            tuple(labels),
            {label: tuple(places) for label, places in elsewhere.items()},
        )

    def legacy_checked(self, genesis_hash: str) -> bool:
        """Whether the old global `[tokens]` config table was already sorted out for this cluster."""
        return bool(self._read()["clusters"].get(genesis_hash, {}).get("legacy_checked"))

    # writing ------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _update(self) -> Iterator[dict[str, Any]]:
        """The file's content to change in place, written back atomically (0600) under an exclusive lock."""
        private_dir(self.path.parent)
        lock_path = private_file(self.path.with_name(self.path.name + ".lock"))
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            self._cache = None
            data = self._read()
            yield data
            data["version"] = FORMAT_VERSION
            descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".")
            with os.fdopen(descriptor, "w") as out:  # mkstemp makes it 0600
                json.dump(data, out, indent=2, sort_keys=True)
            os.replace(temporary, self.path)
            self._cache = None

    @staticmethod
    def _entry(data: dict[str, Any], genesis_hash: str, url: str | None) -> dict[str, Any]:
        entry: dict[str, Any] = data["clusters"].setdefault(genesis_hash, {})
        entry.setdefault("labels", {})
        if url:
            entry["url"] = url
        return entry

    def add(
        self,
        genesis_hash: str,
        label: str,
        mint: str,
        *,
        test_mint: bool = False,
        url: str | None = None,
        replace: bool = False,
    ) -> TokenLabel:
        """Label `mint` on the cluster `genesis_hash`. One label per mint (the mint's previous label goes)
        and one mint per label: a label that names another mint is moved only with `replace`; a built-in
        well-known label is never moved. The mint is not checked here: `GhostPayClient.add_token_label`
        reads it first."""
        label, mint = label.strip(), mint.strip()
        if not is_label(label):
            raise _invalid(f"a token label is 1 to 16 letters, digits, '-' or '_' (like USDC), not {label!r}")
        if not is_address(mint):
            raise _invalid(f"{mint!r} is not a mint address (base58, 32 bytes)")
        current = self.cluster(genesis_hash, url).find(label)
        if current is not None and current.mint != mint:
            if current.source == WELL_KNOWN_SOURCE:
                raise _invalid(
                    f"{current.label} on {cluster_name(genesis_hash, url)} is the well-known mint "
                    f"{current.mint} (built in); choose another label"
                )
            if not replace:
                from ghostpay.exceptions import TokenLabelTaken

                raise TokenLabelTaken(
                    f"the label {current.label} already names the mint {current.mint} on "
                    f"{cluster_name(genesis_hash, url)}",
                    label=current.label,
                    mint=current.mint,
                )
        with self._update() as data:
            labels = self._entry(data, genesis_hash, url)["labels"]
            for name in [
                name for name, entry in labels.items() if name.casefold() == label.casefold() or entry["mint"] == mint
            ]:
                del labels[name]
            labels[label] = {"mint": mint, "test_mint": test_mint}
        return TokenLabel(label, mint, TEST_MINT_SOURCE if test_mint else USER_SOURCE)

    def remove(self, genesis_hash: str, label: str) -> TokenLabel:
        """Forget a user label of the cluster (the mint itself is untouched)."""
        found = self.cluster(genesis_hash).find(label)
        if found is None or found.source == WELL_KNOWN_SOURCE:
            built_in = " (it names a well-known mint, built in)" if found is not None else ""
            raise _invalid(
                f"no token label {label!r} of yours on {cluster_name(genesis_hash)}{built_in}; see 'ghost tokens list'"
            )
        with self._update() as data:
            data["clusters"].get(genesis_hash, {}).get("labels", {}).pop(found.label, None)
        return found

    def mark_legacy_checked(self, genesis_hash: str, url: str | None = None) -> None:
        with self._update() as data:
            self._entry(data, genesis_hash, url)["legacy_checked"] = True


def test_mints(genesis_hash: str, path: Path | str | None = None) -> dict[str, str]:
    """label -> mint address of the test mints labelled (`ghost test-mint --symbol`) on the cluster whose
    genesis hash is `genesis_hash`: what a localnet's facilitator may accept by default."""
    return TokenLabels(path).cluster(genesis_hash).test_mints()


__all__ = [
    "MAINNET_GENESIS",
    "DEVNET_GENESIS",
    "NETWORKS",
    "WELL_KNOWN",
    "TokenLabel",
    "ClusterLabels",
    "TokenLabels",
    "cluster_name",
    "is_address",
    "is_label",
    "test_mints",
]
