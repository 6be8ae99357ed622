"""HTTP API: experiments of a namespace, their state changes, assignment lookup and results."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, patch, post, put
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody, QueryParameter

from plugyard.deployments.schemas import Deployment
from plugyard.deps import (
    AfterName,
    CurrentNamespace,
    CurrentPrincipal,
    CurrentTenant,
    DbConn,
    Gateways,
    PageLimit,
)
from plugyard.experiments import preview
from plugyard.experiments.assignment import AssignmentService
from plugyard.experiments.results import ResultsService
from plugyard.experiments.schemas import (
    AssignmentOut,
    Experiment,
    ExperimentChanged,
    ExperimentCreate,
    ExperimentRow,
    ExperimentUpdate,
    Holdout,
    HoldoutSet,
    PreviewToken,
    PreviewTokenCreate,
    Sticky,
    StopIn,
    Variant,
    VariantRow,
)
from plugyard.experiments.schemas import Exclusion as ExclusionOut
from plugyard.experiments.service import ExperimentService
from plugyard.experiments.stats import Results
from plugyard.namespaces.schemas import NamespaceRow

_KEY = "/{key:str}"
Visitor = Annotated[
    str, QueryParameter(min_length=1, max_length=512, description="the visitor key (cookie or header value)")
]


def view(row: ExperimentRow, variants: list[VariantRow], namespace: NamespaceRow) -> Experiment:
    """The API view of an experiment."""
    exclusion = None
    if row.exclusion_group is not None:
        assert row.exclusion_start is not None
        assert row.exclusion_end is not None
        exclusion = ExclusionOut(group=row.exclusion_group, start=row.exclusion_start, end=row.exclusion_end)
    return Experiment(
        key=row.key,
        plugin=row.plugin,
        namespace=namespace.name,
        state=row.state,
        phase=row.phase,
        seed=row.seed,
        coverage=row.coverage,
        variants=[
            Variant(name=v.name, version=v.version, version_hash=v.version_hash, weight=v.weight)
            for v in variants
        ],
        sticky=Sticky(source=row.sticky_source, name=row.sticky_name),
        exclusion=exclusion,
        guardrail=row.guardrail,
        winner=row.winner,
        status_reason=row.status_reason,
        guardrail_trip=row.guardrail_trip,
        phase_started_at=row.phase_started_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class ExperimentController(Controller):
    """A/B experiments on a namespace's plugins (docs/experiments.md)."""

    path = "/v1/tenants/{tenant:str}/namespaces/{namespace:str}/experiments"
    tags = ["experiments"]

    async def _changed(
        self,
        service: ExperimentService,
        tenant_row: CurrentTenant,
        namespace_row: NamespaceRow,
        row: ExperimentRow,
        deployment: Deployment | None,
    ) -> ExperimentChanged:
        return ExperimentChanged(
            experiment=view(row, await service.variants(tenant_row, row), namespace_row),
            deployment=deployment,
        )

    @post("/", summary="Create a draft experiment")
    async def create(
        self,
        data: JSONBody[ExperimentCreate],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> Experiment:
        """A draft on one plugin: 2..20 variants (name, stored version, weight), coverage, sticky key."""
        service = ExperimentService(conn, publisher)
        row = await service.create(tenant_row, namespace_row, data, actor=principal.actor)
        return view(row, await service.variants(tenant_row, row), namespace_row)

    @get("/", summary="List experiments")
    async def list_experiments(
        self,
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
        limit: PageLimit = 50,
        after: AfterName = "",
    ) -> list[Experiment]:
        """A page of experiments ordered by key."""
        service = ExperimentService(conn, publisher)
        rows = await service.page(tenant_row, namespace_row, after=after, limit=limit)
        return [view(r, await service.variants(tenant_row, r), namespace_row) for r in rows]

    @get(_KEY, summary="Get an experiment")
    async def get_experiment(
        self,
        key: FromPath[str],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
    ) -> Experiment:
        """One experiment with its variants and state."""
        service = ExperimentService(conn, publisher)
        row = await service.get(tenant_row, namespace_row, key)
        return view(row, await service.variants(tenant_row, row), namespace_row)

    @patch(_KEY, summary="Change weights, coverage or guardrail")
    async def update(
        self,
        key: FromPath[str],
        data: JSONBody[ExperimentUpdate],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> ExperimentChanged:
        """Weights and coverage of a live experiment change only with `new_phase: true` (else 409)."""
        service = ExperimentService(conn, publisher)
        row = await service.get(tenant_row, namespace_row, key)
        row, deployment = await service.update(tenant_row, namespace_row, row, data, actor=principal.actor)
        return await self._changed(service, tenant_row, namespace_row, row, deployment)

    async def _transition(
        self,
        action: str,
        key: str,
        tenant_row: CurrentTenant,
        namespace_row: NamespaceRow,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
        winner: str | None = None,
    ) -> ExperimentChanged:
        service = ExperimentService(conn, publisher)
        row = await service.get(tenant_row, namespace_row, key)
        row, deployment = await service.transition(
            tenant_row, namespace_row, row, action, actor=principal.actor, winner=winner
        )
        return await self._changed(service, tenant_row, namespace_row, row, deployment)

    @post(_KEY + "/start", summary="Start (draft → running)", status_code=200)
    async def start(
        self,
        key: FromPath[str],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> ExperimentChanged:
        """Deploys the experiment: the gateway starts bucketing visitors."""
        return await self._transition("start", key, tenant_row, namespace_row, principal, conn, publisher)

    @post(_KEY + "/pause", summary="Pause (everyone gets the active version)", status_code=200)
    async def pause(
        self,
        key: FromPath[str],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> ExperimentChanged:
        """Assignments are kept: resuming gives visitors their variants back."""
        return await self._transition("pause", key, tenant_row, namespace_row, principal, conn, publisher)

    @post(_KEY + "/resume", summary="Resume (paused → running)", status_code=200)
    async def resume(
        self,
        key: FromPath[str],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> ExperimentChanged:
        """Same seed, same phase: every visitor gets the variant they had."""
        return await self._transition("resume", key, tenant_row, namespace_row, principal, conn, publisher)

    @post(_KEY + "/stop", summary="Stop with a winner", status_code=200)
    async def stop(
        self,
        key: FromPath[str],
        data: JSONBody[StopIn],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> ExperimentChanged:
        """The winner's version becomes the plugin's active version and serves 100%."""
        return await self._transition(
            "stop", key, tenant_row, namespace_row, principal, conn, publisher, winner=data.winner
        )

    @post(_KEY + "/kill", summary="Kill switch", status_code=200)
    async def kill(
        self,
        key: FromPath[str],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> ExperimentChanged:
        """Stops at once without a winner: everyone gets the plugin's active version."""
        return await self._transition("kill", key, tenant_row, namespace_row, principal, conn, publisher)

    @get(_KEY + "/assignment", summary="Which variant does a visitor get?")
    async def assignment(
        self,
        key: FromPath[str],
        visitor: Visitor,
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
    ) -> AssignmentOut:
        """The same GrowthBook-compatible bucketing the gateway runs (docs/experiments.md)."""
        service = ExperimentService(conn, publisher)
        row = await service.get(tenant_row, namespace_row, key)
        return await AssignmentService(conn, publisher).assignment(tenant_row, namespace_row, row, visitor)

    @get(_KEY + "/results", summary="Results per variant")
    async def results(
        self,
        key: FromPath[str],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
        event: Annotated[str | None, QueryParameter(max_length=64, description="conversion event")] = None,
    ) -> Results:
        """Exposures, visitors, errors, latency, conversions with intervals, lift and the SRM check."""
        service = ExperimentService(conn, publisher)
        row = await service.get(tenant_row, namespace_row, key)
        variants = await service.variants(tenant_row, row)
        return await ResultsService(conn).results(tenant_row, namespace_row, row, variants, event=event)

    @post(_KEY + "/preview-tokens", summary="Issue a QA preview override")
    async def preview_token(
        self,
        key: FromPath[str],
        data: JSONBody[PreviewTokenCreate],
        request: Request[object, object, State],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
    ) -> PreviewToken:
        """A signed token forcing a variant at the gateway; such requests are not counted in results."""
        service = ExperimentService(conn, publisher)
        row = await service.get(tenant_row, namespace_row, key)
        variants = await service.variants(tenant_row, row)
        return preview.issue(
            request.app.state.experiment_gateway_secret, tenant_row, namespace_row, row, variants, data
        )


class HoldoutController(Controller):
    """The share of a namespace's visitors kept out of every experiment."""

    path = "/v1/tenants/{tenant:str}/namespaces/{namespace:str}/experiment-holdout"
    tags = ["experiments"]

    @get("/", summary="Get the namespace's experiment holdout")
    async def get_holdout(
        self, tenant_row: CurrentTenant, namespace_row: CurrentNamespace, conn: DbConn, publisher: Gateways
    ) -> Holdout:
        """0 unless set."""
        share = await AssignmentService(conn, publisher).holdout(tenant_row, namespace_row)
        return Holdout(namespace=namespace_row.name, share=share)

    @put("/", summary="Set the namespace's experiment holdout")
    async def set_holdout(
        self,
        data: JSONBody[HoldoutSet],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> Deployment:
        """Deploys at once: held-out visitors get the active version of every plugin."""
        return await AssignmentService(conn, publisher).set_holdout(
            tenant_row, namespace_row, data.share, actor=principal.actor
        )
