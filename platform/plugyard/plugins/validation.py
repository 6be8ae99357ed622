"""Validation before accept: a gateway loads the bundle in a throwaway isolate.

The gateway's `POST /_plugyard/validate` (docs/gateway-protocol.md) runs the bundle with
`env.LOADER.load` and `globalOutbound: null` behind a small probe module that imports the main
module and reports which handlers its default export has. Nothing is stored unless it answers
200; a 422 carries the runtime's own message and the module it names.
"""

from __future__ import annotations

from collections import OrderedDict
from uuid import UUID

import httpx
import msgspec
import structlog

from plugyard.deployments.payload import gateway_bundle, gateway_limits
from plugyard.deployments.service import Publisher
from plugyard.errors import InvalidInput, Unavailable
from plugyard.plugins.bundles import Bundle

log = structlog.get_logger(__name__)

VALIDATE_PATH = "/_plugyard/validate"
# Loading a large bundle (wasm compilation) can take longer than a push.
VALIDATE_TIMEOUT_S = 20.0
_ENCODER = msgspec.json.Encoder(order="deterministic")


class ValidatedBundles:
    """Content hashes a gateway has accepted, per tenant: a bundle with a known hash is not loaded again.

    The hash covers the modules, the main module, the compatibility settings and the limits
    (plugins.bundles), i.e. everything the gateway validates, so the same hash is the same
    verdict. Only acceptances are kept. Keys are (tenant id, hash): one tenant's uploads never
    speed up another's, so the time an upload takes tells nothing about other tenants' code.
    Per process, bounded (least recently used entries go first).
    """

    def __init__(self, max_entries: int = 4096) -> None:
        """An empty cache holding at most `max_entries` hashes."""
        self._max = max_entries
        self._seen: OrderedDict[tuple[UUID, str], None] = OrderedDict()

    def __contains__(self, key: tuple[UUID, str]) -> bool:
        """Whether this tenant's bundle with this hash was accepted (refreshes its place)."""
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        return False

    def add(self, tenant_id: UUID, bundle_hash: str) -> None:
        """Remember an accepted (or already stored) bundle of a tenant."""
        self._seen[(tenant_id, bundle_hash)] = None
        self._seen.move_to_end((tenant_id, bundle_hash))
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)


# This process's verdicts (docs/plugins.md, "Validation before accept"); a cache, not configuration.
VALIDATED = ValidatedBundles()


async def validate(publisher: Publisher, bundle: Bundle, module_names: list[str]) -> list[str]:
    """Have one gateway load the bundle; the first gateway that answers decides.

    Args:
        publisher: the gateways and their signed client.
        bundle: the checked bundle.
        module_names: the module names in upload order (to name the offending `modules[i]`).

    Returns:
        The handlers the main module exports (`fetch`, `scheduled`).

    Raises:
        InvalidInput: the runtime rejected the bundle (`bundle-rejected`, 422).
        Unavailable: no gateway is configured or none answered (503); nothing is stored then.
    """
    if not publisher.gateways:
        raise Unavailable(
            "no gateway is configured to validate the bundle, so nothing was stored",
            slug="validation-unavailable",
        )
    body = _ENCODER.encode(
        {
            "bundle": gateway_bundle(
                bundle.main_module, bundle.modules, bundle.compatibility_date, bundle.compatibility_flags
            ),
            "limits": gateway_limits(bundle.limits),
        }
    )
    failures = []
    for gateway in publisher.gateways:
        try:
            response = await publisher.client.call(
                gateway, "POST", VALIDATE_PATH, body, timeout_s=VALIDATE_TIMEOUT_S
            )
        except httpx.HTTPError as exc:
            failures.append(f"{gateway}: {type(exc).__name__}")
            continue
        if response.status_code == 200:
            handlers: list[str] = msgspec.json.decode(response.content).get("handlers", [])
            log.info("bundle_validated", hash=bundle.hash, gateway=gateway)
            return handlers
        if response.status_code == 422:
            problem = msgspec.json.decode(response.content)
            module = problem.get("module")
            field = f"modules[{module_names.index(module)}]" if module in module_names else "modules"
            log.info("bundle_rejected", hash=bundle.hash, module=module)
            raise InvalidInput(
                str(problem.get("detail", "the runtime rejected the bundle")),
                field=field,
                slug="bundle-rejected",
                module=module,
            )
        failures.append(f"{gateway}: HTTP {response.status_code}")
    log.warning("bundle_validation_unavailable", failures=failures)
    raise Unavailable(
        "no gateway could validate the bundle, so nothing was stored: " + "; ".join(failures),
        slug="validation-unavailable",
    )
