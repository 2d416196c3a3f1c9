"""Reading another ecosystem's agent from its URL: its ERC-8004 registration file and its A2A Agent Card.

Given an origin (`https://agent.example`), both well-known documents are looked for
(`/.well-known/agent-registration.json`, `/.well-known/agent-card.json`); given a document's URL, that
document, and then the Agent Card its registration file names as its `A2A` service. What a foreign
document names is fetched from this machine, so like webhook URLs (`ghostpay.addresses`) every URL is
refused when its host is or resolves to a loopback, private or link-local address, unless the caller
allows them; redirects are not followed (one could lead there) and answers are capped in size.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from ghostpay import erc8004
from ghostpay.addresses import private_address_refusal
from ghostpay.exceptions import GhostPayError

MAX_DOCUMENT_BYTES = 1 << 20  # agent cards and registration files are a few kilobytes
FETCH_TIMEOUT_SECONDS = 10.0
X402_MARK = "x402"  # an A2A extension whose URI names x402 is a payment extension (a2a-x402)


class ForeignAgentError(GhostPayError):
    """No agent document could be read at the URL (the message says why: refused, unreachable, not one)."""


@dataclass
class ForeignAgent:
    """What was found: the registration file and/or the Agent Card, with where each came from."""

    url: str
    registration: erc8004.RegistrationFile | None = None
    registration_url: str | None = None
    card: dict[str, Any] | None = None
    card_url: str | None = None
    problems: list[str] = field(default_factory=list)  # documents looked for and not read, and why

    def summary(self) -> dict[str, Any]:
        """What the agent offers (services, skills, interfaces) and accepts (payments, input modes)."""
        card = self.card or {}
        reg = self.registration
        extensions = [e for e in (card.get("capabilities") or {}).get("extensions") or [] if isinstance(e, dict)]
        payments = [e for e in extensions if X402_MARK in str(e.get("uri", "")).lower()]
        return {
            "url": self.url,
            "name": reg.name if reg is not None else card.get("name"),
            "description": reg.description if reg is not None else card.get("description"),
            "registration_url": self.registration_url,
            "card_url": self.card_url,
            "offers": {
                "services": [s.to_json() for s in reg.services] if reg is not None else [],
                "skills": [
                    {k: s.get(k) for k in ("id", "name", "description", "tags")}
                    for s in card.get("skills") or []
                    if isinstance(s, dict)
                ],
                "interfaces": card_interfaces(card),
            },
            "accepts": {
                "x402": bool(reg.x402_support if reg is not None else False) or bool(payments),
                "payment_extensions": payments,
                "input_modes": card.get("defaultInputModes") or [],
                "output_modes": card.get("defaultOutputModes") or [],
            },
            "active": reg.active if reg is not None else None,
            "registrations": [r.to_json() for r in reg.registrations] if reg is not None else [],
            "supported_trust": list(reg.supported_trust) if reg is not None else [],
            "problems": self.problems,
        }


def card_interfaces(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Where an Agent Card says it is reached: `supportedInterfaces` (A2A 1.0), else `url` and
    `additionalInterfaces` (0.3)."""
    listed = card.get("supportedInterfaces")
    if not isinstance(listed, list):
        main = [{"url": card["url"], "protocolBinding": card.get("preferredTransport")}] if card.get("url") else []
        listed = main + [
            {"url": i.get("url"), "protocolBinding": i.get("transport")}
            for i in card.get("additionalInterfaces") or []
            if isinstance(i, dict)
        ]
    return [
        {k: i.get(k) for k in ("url", "protocolBinding", "protocolVersion") if i.get(k) is not None}
        for i in listed
        if isinstance(i, dict)
    ]


def is_agent_card(doc: Any) -> bool:
    return isinstance(doc, dict) and "name" in doc and any(k in doc for k in ("skills", "supportedInterfaces", "url"))


async def read_foreign_agent(url: str, *, allow_private: bool = False) -> ForeignAgent:
    """The agent at `url` (an origin, or a registration file's or Agent Card's URL); ForeignAgentError when
    neither document can be read there."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ForeignAgentError(f"{url!r} is not an http(s) URL")
    origin = f"{parts.scheme}://{parts.netloc}"
    found = ForeignAgent(url)
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False) as http:
        wanted = (
            [url]
            if parts.path not in ("", "/")
            else [origin + erc8004.REGISTRATION_PATH, origin + erc8004.AGENT_CARD_PATH]
        )
        for where in wanted:
            await _take(found, where, await _fetch(http, where, allow_private, found.problems))
        a2a = found.registration.service(erc8004.SERVICE_A2A) if found.registration is not None else None
        if found.card is None and a2a is not None:
            await _take(found, a2a.endpoint, await _fetch(http, a2a.endpoint, allow_private, found.problems))
    if found.registration is None and found.card is None:
        raise ForeignAgentError(
            f"no ERC-8004 registration file or A2A Agent Card at {url}: " + "; ".join(found.problems)
        )
    return found


async def _take(found: ForeignAgent, where: str, doc: Any) -> None:
    if doc is None:
        return
    if isinstance(doc, dict) and doc.get("type") == erc8004.REGISTRATION_TYPE:
        try:
            found.registration, found.registration_url = erc8004.RegistrationFile.from_json(doc), where
        except erc8004.RegistrationFileInvalid as exc:
            found.problems.append(f"{where}: {exc}")
    elif is_agent_card(doc):
        found.card, found.card_url = doc, where
    else:
        found.problems.append(f"{where}: neither a registration file nor an Agent Card")


async def _fetch(http: httpx.AsyncClient, url: str, allow_private: bool, problems: list[str]) -> Any:
    """The JSON at `url`, or None with the reason added to `problems`."""
    if urlsplit(url).scheme not in ("http", "https"):
        problems.append(f"{url}: not an http(s) URL")
        return None
    refusal = None if allow_private else await asyncio.to_thread(private_address_refusal, url)
    if refusal is not None:
        problems.append(f"refused: {refusal} (allow it with --allow-private)")
        return None
    try:
        async with http.stream("GET", url, headers={"Accept": "application/json"}) as answer:
            if answer.status_code != httpx.codes.OK:
                problems.append(f"{url}: HTTP {answer.status_code}")
                return None
            body = b""
            async for chunk in answer.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    problems.append(f"{url}: larger than {MAX_DOCUMENT_BYTES} bytes")
                    return None
        return json.loads(body)
    except httpx.HTTPError as exc:
        problems.append(f"{url}: {type(exc).__name__}: {exc}")
    except ValueError:
        problems.append(f"{url}: not JSON")
    return None
