"""Deployments: snapshot a namespace, store it as a revision, push it to every gateway.

A deployment and its pending push rows are written in the caller's transaction; the push itself
happens after commit. A push that fails, or that never ran because the process died, stays
pending/failed and is retried by the reconciler (deployments/reconciler.py: one replica at a
time, advisory lock), which also re-pushes whatever a gateway reports missing or behind.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from uuid import UUID

import asyncpg
import msgspec
import structlog

from plugyard.deployments.payload import effective_env, gateway_bundle, gateway_limits, open_secrets
from plugyard.deployments.repository import DeploymentRepository
from plugyard.deployments.schemas import (
    BundleRow,
    Deployment,
    DeploymentRow,
    NamespaceState,
    PluginState,
    Push,
    RouteState,
)
from plugyard.errors import Conflict, NotFound
from plugyard.experiments.snapshot import live_states
from plugyard.experiments.state import push_entry
from plugyard.fairness.repository import LiveVersionRepository
from plugyard.gateway.client import GatewayClient, PushOutcome
from plugyard.namespaces.repository import NamespaceRepository
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.quarantine.repository import QuarantineRepository
from plugyard.settings import Settings
from plugyard.tenants.schemas import TenantRow
from plugyard.vault.repository import VaultRepository
from plugyard.vault.sealing import Sealer, SealingError

log = structlog.get_logger(__name__)

RETRY_LOCK_KEY = 0x706C7567_0002
_ENCODER = msgspec.json.Encoder(order="deterministic")


def env_hash(
    vars_: dict[str, str], secret_refs: dict[str, str] | None = None, limits: dict[str, int] | None = None
) -> str:
    """Hash of what a plugin's isolate is configured with besides its code.

    It is part of the loader id, so changed vars, secrets or limits get a fresh isolate rather
    than a cached one. Secrets enter as their row ids (a new value is a new row), never as values,
    because the hash is shown in the API.
    """
    return hashlib.sha256(
        _ENCODER.encode({"vars": vars_, "secrets": secret_refs or {}, "limits": limits})
    ).hexdigest()[:16]


class Publisher:
    """Everything that turns stored state into what gateways run.

    The gateways and the signed client that reaches them, the key that opens secrets for a push,
    and the upload and preview settings the publishing services apply.
    """

    def __init__(
        self,
        client: GatewayClient,
        gateways: Sequence[str],
        *,
        sealer: Sealer | None = None,
        max_bundle_bytes: int = 1024 * 1024,
        preview_domain: str = "preview.plugyard.localhost",
        preview_url: str = "http://{host}/",
        preview_ttl_s: int = 86400,
        max_live_versions: int | None = None,
    ) -> None:
        """Hold a client, the gateway base URLs and the publishing settings."""
        self.client = client
        self.gateways = tuple(gateways)
        self.sealer = sealer
        self.max_bundle_bytes = max_bundle_bytes
        self.preview_domain = preview_domain
        self.preview_url = preview_url
        self.preview_ttl_s = preview_ttl_s
        self.max_live_versions = max_live_versions

    @classmethod
    def from_settings(cls, client: GatewayClient, settings: Settings) -> Publisher:
        """A publisher configured from the settings tree."""
        return cls(
            client,
            settings.gateway.urls,
            sealer=Sealer.from_setting(settings.secrets_key),
            max_bundle_bytes=settings.max_bundle_bytes,
            preview_domain=settings.preview_domain,
            preview_url=settings.preview_url,
            preview_ttl_s=settings.preview_ttl_s,
            max_live_versions=settings.max_live_versions or None,
        )


def push_body(
    tenant: str,
    namespace: str,
    deployment: DeploymentRow,
    bundles: Sequence[BundleRow],
    secrets: dict[str, str] | None = None,
) -> bytes:
    """Encode a deployment as the gateway's push body (docs/gateway-protocol.md).

    Args:
        tenant: tenant slug.
        namespace: namespace name.
        deployment: the recorded deployment.
        bundles: the code of every version it references.
        secrets: secret row id → plaintext (from `open_secrets`) for the plugins' `secret_refs`.
    """
    state = msgspec.convert(deployment.state, NamespaceState)
    opened = secrets or {}
    return _ENCODER.encode(
        {
            "tenant": tenant,
            "namespace": namespace,
            "revision": deployment.revision,
            # The namespace's incarnation: a re-created namespace restarts its revisions.
            "epoch": str(deployment.namespace_id),
            "routes": [{"pattern": r.pattern, "plugin": r.plugin} for r in state.routes],
            "egress": state.egress or {"allow": [], "methods": None},
            "plugins": {
                name: {
                    "version": p.version,
                    "env_hash": p.env_hash,
                    "vars": p.vars,
                    "secrets": {key: opened[ref] for key, ref in p.secret_refs.items()},
                    "limits": gateway_limits(p.limits),
                    **(
                        {}
                        if p.experiment is None
                        else {"experiment": push_entry(p.experiment, gateway_limits)}
                    ),
                    **({"quarantine": p.quarantine} if p.quarantine else {}),
                }
                for name, p in state.plugins.items()
            },
            "bundles": {
                b.hash: gateway_bundle(b.main_module, b.modules, b.compatibility_date, b.compatibility_flags)
                for b in bundles
            },
        }
    )


def _variant_env(plugins: dict[str, PluginState]) -> Callable[[str, dict[str, int] | None], str]:
    """The env hash of a plugin's isolate running an experiment variant (its own version's limits)."""

    def of(plugin: str, limits: dict[str, int] | None) -> str:
        p = plugins[plugin]
        return env_hash(p.vars, p.secret_refs, limits)

    return of


def _live_ids(plugins: dict[str, PluginState]) -> set[UUID]:
    """Version ids a namespace state makes live: active versions and experiment variants."""
    ids = {p.version_id for p in plugins.values() if p.version_id is not None}
    ids.update(v.version_id for p in plugins.values() if p.experiment for v in p.experiment.variants)
    return ids


class DeploymentService:
    """Records deployments and pushes them."""

    def __init__(self, conn: asyncpg.Connection, publisher: Publisher) -> None:
        """Bind to a connection and a publisher."""
        self._conn = conn
        self._repo = DeploymentRepository(conn)
        self._namespaces = NamespaceRepository(conn)
        self._publisher = publisher
        # Tenant slug and namespace name of the deployments recorded here: a push right after
        # the record (the usual case) needs no query for them.
        self._names: dict[UUID, tuple[str, str]] = {}

    async def record(
        self, tenant: TenantRow, namespace: NamespaceRow, *, reason: str, actor: str
    ) -> DeploymentRow:
        """Snapshot the namespace as a new revision with pending pushes.

        Must run inside the transaction that made the change, so the snapshot and the change
        commit together or not at all.
        """
        locked = await self._namespaces.lock(tenant.id, namespace.id)
        secret_rows = await VaultRepository(self._conn).namespace_current(tenant.id, namespace.id)
        plugins = {}
        for row in await self._repo.plugins_state(tenant.id, namespace.id):
            vars_, refs = effective_env(locked.vars, row["id"], row["vars"], secret_rows)
            limits = row["limits"]
            plugins[row["name"]] = PluginState(
                version_id=row["version_id"],
                version=row["hash"],
                env_hash=None if row["hash"] is None else env_hash(vars_, refs, limits),
                vars=vars_,
                secret_refs=refs,
                limits=limits,
            )
        for name, experiment in (
            await live_states(self._conn, tenant.id, namespace.id, _variant_env(plugins))
        ).items():
            plugins[name] = msgspec.structs.replace(plugins[name], experiment=experiment)
        quarantined = await QuarantineRepository(self._conn).open_in_namespace(tenant.id, namespace.id)
        for name, held in quarantined.items():
            plugins[name] = msgspec.structs.replace(plugins[name], quarantine=held)
        routes = [
            RouteState(pattern=r["pattern"], plugin=r["plugin"])
            for r in await self._repo.routes_state(tenant.id, namespace.id)
        ]
        await self._check_live_cap(tenant, namespace, plugins)
        state = msgspec.to_builtins(NamespaceState(routes=routes, plugins=plugins, egress=locked.egress))
        deployment = await self._repo.insert_next(
            tenant.id, namespace.id, reason, actor, state, self._publisher.gateways
        )
        self._names[deployment.id] = (tenant.slug, namespace.name)
        return deployment

    async def _check_live_cap(
        self, tenant: TenantRow, namespace: NamespaceRow, plugins: dict[str, PluginState]
    ) -> None:
        """Refuse a change that makes a version live while the tenant is over its cap.

        Runs in the change's transaction, so the count includes the change; raising rolls it back.
        A change that adds no live version to the namespace (stopping an experiment, a quarantine,
        new vars) always passes, so nothing that reduces load is ever refused.
        """
        cap = self._publisher.max_live_versions
        if not cap or (live := await LiveVersionRepository(self._conn).count(tenant.id)) <= cap:
            return
        previous = await self._repo.page(tenant.id, namespace.id, before=2**31 - 1, limit=1)
        before = _live_ids(msgspec.convert(previous[0].state, NamespaceState).plugins) if previous else set()
        if _live_ids(plugins) - before:
            raise Conflict(
                f"this would make {live} versions live (active or in an experiment) for the tenant; "
                f"the cap is {cap}",
                slug="live-version-cap",
                live=live,
                limit=cap,
            )

    async def push(self, deployment: DeploymentRow, gateways: Sequence[str] | None = None) -> Deployment:
        """Push a recorded deployment to gateways (default: all) and record each outcome."""
        targets = self._publisher.gateways if gateways is None else tuple(gateways)
        names = self._names.get(deployment.id)
        tenant, namespace = names if names is not None else await self._repo.names(deployment.namespace_id)
        state = msgspec.convert(deployment.state, NamespaceState)
        version_ids = [p.version_id for p in state.plugins.values() if p.version_id is not None]
        # Every variant's code goes along too (docs/experiments.md).
        version_ids += [
            v.version_id for p in state.plugins.values() if p.experiment for v in p.experiment.variants
        ]
        refs = [ref for p in state.plugins.values() for ref in p.secret_refs.values()]
        try:
            secrets = await open_secrets(self._conn, self._publisher.sealer, deployment.tenant_id, refs)
        except SealingError as exc:
            # Nothing is pushed without its secrets; the reason names no value.
            failed = PushOutcome(status="failed", error=f"secrets cannot be opened: {exc}")
            outcomes: Sequence[PushOutcome] = [failed] * len(targets)
        else:
            bundles = await self._repo.bundles(deployment.tenant_id, version_ids)
            body = push_body(tenant, namespace, deployment, bundles, secrets)
            outcomes = await asyncio.gather(
                *(self._publisher.client.push(gw, tenant, namespace, body) for gw in targets)
            )
        # Every outcome recorded and all the deployment's pushes read back in one statement.
        pushes = await self._repo.record_pushes(
            deployment.id, [(gw, o.status, o.error) for gw, o in zip(targets, outcomes, strict=True)]
        )
        for gateway, outcome in zip(targets, outcomes, strict=True):
            _log_outcome(deployment, gateway, outcome, tenant=tenant, namespace=namespace)
        return await self.read(deployment, pushes)

    async def read(self, deployment: DeploymentRow, pushes: list[Push] | None = None) -> Deployment:
        """The API view of a deployment, with its pushes (read unless given)."""
        return Deployment(
            revision=deployment.revision,
            reason=deployment.reason,
            actor=deployment.actor,
            created_at=deployment.created_at,
            state=msgspec.convert(deployment.state, NamespaceState),
            pushes=await self._repo.pushes(deployment.id) if pushes is None else pushes,
        )

    async def get(self, tenant: TenantRow, namespace: NamespaceRow, revision: int) -> Deployment:
        """One deployment of a namespace.

        Raises:
            NotFound: no such revision.
        """
        row = await self._repo.get(tenant.id, namespace.id, revision)
        if row is None:
            raise NotFound(f"revision {revision} not found", slug="deployment-not-found")
        return await self.read(row)

    async def page(
        self, tenant: TenantRow, namespace: NamespaceRow, *, before: int, limit: int
    ) -> list[Deployment]:
        """A page of a namespace's deployments, newest first."""
        rows = await self._repo.page(tenant.id, namespace.id, before=before, limit=limit)
        pushes = await self._repo.pushes_of([row.id for row in rows])
        return [await self.read(row, pushes[row.id]) for row in rows]


def _log_outcome(
    deployment: DeploymentRow, gateway: str, outcome: PushOutcome, *, tenant: str, namespace: str
) -> None:
    fields = {"tenant": tenant, "namespace": namespace, "revision": deployment.revision, "gateway": gateway}
    if outcome.status == "failed":
        log.warning("push_failed", error=outcome.error, **fields)
    else:
        log.info("push_" + outcome.status, **fields)


async def retry_open_pushes(
    conn: asyncpg.Connection,
    publisher: Publisher,
    *,
    pending_after_s: float = 3.0,
    backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
) -> int:
    """Retry pushes that failed or never ran; mark those of superseded revisions.

    Only one process retries at a time (a session advisory lock); others return at once.

    Returns:
        How many pushes were attempted.
    """
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RETRY_LOCK_KEY):
        return 0
    try:
        return await retry_due_pushes(
            conn, publisher, pending_after_s=pending_after_s, backoff_s=backoff_s, max_backoff_s=max_backoff_s
        )
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", RETRY_LOCK_KEY)


async def retry_due_pushes(
    conn: asyncpg.Connection,
    publisher: Publisher,
    *,
    pending_after_s: float = 3.0,
    backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
    recovered: Sequence[str] = (),
) -> int:
    """`retry_open_pushes` without the lock: for a caller that already leads (the reconciler).

    Failed pushes to a gateway in `recovered` (unreachable on the last pass, answering now) are
    retried at once, whatever their backoff: the outage they failed in is over.

    Returns:
        How many pushes were attempted.
    """
    repo = DeploymentRepository(conn)
    service = DeploymentService(conn, publisher)
    attempted = 0
    for row in await repo.open_pushes(
        pending_after_s=pending_after_s,
        backoff_s=backoff_s,
        max_backoff_s=max_backoff_s,
        limit=100,
        recovered=recovered,
    ):
        deployment_id: UUID = row["deployment_id"]
        if not row["latest"]:
            await repo.record_push(deployment_id, row["gateway"], "superseded", None)
            continue
        await service.push(await repo.get_by_id(deployment_id), [row["gateway"]])
        attempted += 1
    return attempted
