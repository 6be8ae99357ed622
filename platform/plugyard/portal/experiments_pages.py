"""Portal pages: experiments of a namespace (create, toggles, kill switch, results, charts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath

from plugyard.deps import LAST, DbConn, Gateways
from plugyard.errors import DomainError, InvalidInput, NotFound
from plugyard.experiments.results import ResultsService
from plugyard.experiments.schemas import ExperimentCreate
from plugyard.experiments.service import TRANSITIONS, ExperimentService
from plugyard.metrics.schemas import Step
from plugyard.metrics.service import MetricsService
from plugyard.namespaces.service import NamespaceService
from plugyard.plugins.service import PluginService
from plugyard.portal import figures, forms
from plugyard.portal.web import Caller, Editor, Viewer, redirect, render

PAGE = 200
MAX_VARIANTS = 4


def variants_from_form(form: Any) -> list[dict[str, Any]]:
    """Variant rows of the create form (`variant_name`, `variant_version`, `variant_weight`)."""
    names = [str(v).strip() for v in form.getall("variant_name")] if "variant_name" in form else []
    versions = [str(v) for v in form.getall("variant_version")] if "variant_version" in form else []
    weights = [str(v) for v in form.getall("variant_weight")] if "variant_weight" in form else []
    out: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        if not name:
            continue
        version = versions[i] if i < len(versions) else ""
        weight = weights[i] if i < len(weights) else ""
        if not version.isdigit():
            raise InvalidInput("pick a version", field=f"variants[{len(out)}].version")
        try:
            share = float(weight)
        except ValueError:
            raise InvalidInput("enter a weight in %", field=f"variants[{len(out)}].weight") from None
        out.append({"name": name, "version": int(version), "weight": share})
    total = sum(float(v["weight"]) for v in out)
    if out and abs(total - 100) > 0.5:
        raise InvalidInput(f"the weights add up to {total:g} %, not 100 %", field="variants")
    return out


class ExperimentPages(Controller):
    """A/B experiments."""

    path = "/t/{tenant:str}/ns/{namespace:str}/experiments"
    include_in_schema = False

    async def _list(
        self,
        me: Caller,
        namespace: str,
        conn: DbConn,
        publisher: Gateways,
        *,
        errors: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
        status: int = 200,
    ) -> Response[str]:
        ns = await NamespaceService(conn).get(me.tenant, namespace)
        service = ExperimentService(conn, publisher)
        experiments = await service.page(me.tenant, ns, after="", limit=PAGE)
        plugins = await PluginService(conn, publisher).page(me.tenant, ns, after="", limit=PAGE)
        versions = {
            p.name: await PluginService(conn, publisher).versions(me.tenant, p, before=LAST, limit=50)
            for p in plugins
        }
        return render(
            "experiments.html",
            status=status,
            me=me,
            nav="dashboard",
            ns=ns,
            experiments=experiments,
            plugins=plugins,
            versions=versions,
            errors=errors or {},
            values=values or {},
            slots=range(MAX_VARIANTS),
        )

    @get("/")
    async def experiments(
        self, namespace: FromPath[str], viewer: Viewer, conn: DbConn, publisher: Gateways
    ) -> Response[str]:
        """Every experiment of the namespace and the create form."""
        return await self._list(viewer, namespace, conn, publisher)

    @post("/")
    async def create(
        self,
        request: Request[Any, Any, State],
        namespace: FromPath[str],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[Any]:
        """Create a draft experiment (weights in % that add up to 100)."""
        form = await request.form()
        values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        try:
            ns = await NamespaceService(conn).get(editor.tenant, namespace)
            data = forms.convert(
                {
                    "key": values.get("key", "").strip(),
                    "plugin": values.get("plugin", ""),
                    "variants": variants_from_form(form),
                },
                ExperimentCreate,
            )
            row = await ExperimentService(conn, publisher).create(editor.tenant, ns, data, actor=editor.actor)
        except DomainError as exc:
            if exc.status == 404 and exc.slug == "namespace-not-found":
                raise
            return await self._list(
                editor,
                namespace,
                conn,
                publisher,
                errors=forms.errors_of(exc),
                values=values,
                status=exc.status,
            )
        return redirect(f"/t/{editor.tenant.slug}/ns/{namespace}/experiments/{row.key}")

    @get("/{key:str}")
    async def experiment(
        self, namespace: FromPath[str], key: FromPath[str], viewer: Viewer, conn: DbConn, publisher: Gateways
    ) -> Response[str]:
        """State, toggles, results (rates, intervals, lift, SRM) and a chart per variant."""
        return await self._detail(viewer, namespace, key, conn, publisher)

    async def _detail(
        self,
        me: Caller,
        namespace: str,
        key: str,
        conn: DbConn,
        publisher: Gateways,
        *,
        error: str | None = None,
        status: int = 200,
    ) -> Response[str]:
        ns = await NamespaceService(conn).get(me.tenant, namespace)
        service = ExperimentService(conn, publisher)
        row = await service.get(me.tenant, ns, key)
        variants = await service.variants(me.tenant, row)
        results = await ResultsService(conn).results(me.tenant, ns, row, variants, event=None)
        now = datetime.now(UTC)
        start = max(row.phase_started_at or now - timedelta(hours=1), now - timedelta(days=7))
        step: Step = "minute" if now - start <= timedelta(hours=6) else "hour"
        answer = await MetricsService(conn).query(
            me.tenant,
            start=start,
            end=now,
            step=step,
            group_by=("variant",),
            filters=(ns.name, row.plugin, None, None),
        )
        names = {v.name for v in variants}
        answer = msgspec.structs.replace(answer, series=[s for s in answer.series if s.variant in names])
        return render(
            "experiment.html",
            status=status,
            me=me,
            nav="dashboard",
            ns=ns,
            experiment=row,
            variants=variants,
            results=results,
            charts=figures.charts(answer, figures.REQUESTS_AND_ERRORS),
            error=error,
            actions=[a for a, (allowed, _) in TRANSITIONS.items() if row.state in allowed],
        )

    @post("/{key:str}/{action:str}")
    async def transition(
        self,
        request: Request[Any, Any, State],
        namespace: FromPath[str],
        key: FromPath[str],
        action: FromPath[str],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[Any]:
        """start, pause, resume, stop (with a winner) or kill; each one deploys at once."""
        if action not in TRANSITIONS:
            raise NotFound(f"no action {action!r}", slug="action-not-found")
        form = await request.form()
        ns = await NamespaceService(conn).get(editor.tenant, namespace)
        service = ExperimentService(conn, publisher)
        row = await service.get(editor.tenant, ns, key)
        try:
            await service.transition(
                editor.tenant,
                ns,
                row,
                action,
                actor=editor.actor,
                winner=str(form.get("winner", "")) or None if action == "stop" else None,
                reason="kill switch in the portal" if action == "kill" else None,
            )
        except DomainError as exc:
            if exc.status == 404:
                raise
            return await self._detail(
                editor, namespace, key, conn, publisher, error=exc.detail, status=exc.status
            )
        return redirect(f"/t/{editor.tenant.slug}/ns/{namespace}/experiments/{key}")
