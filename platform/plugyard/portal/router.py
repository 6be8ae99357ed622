"""The portal as one Litestar router: pages, their dependencies and HTML error handling."""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.static_files import create_static_files_router

from plugyard.errors import DomainError
from plugyard.portal import web
from plugyard.settings import PortalSettings


def portal_router(settings: PortalSettings) -> Router:
    """Every portal page under `/`, with sessions, CSRF and roles wired in."""
    from plugyard.portal.auth import AuthPages
    from plugyard.portal.dashboard import DashboardPages
    from plugyard.portal.experiments_pages import ExperimentPages
    from plugyard.portal.history import HistoryPages
    from plugyard.portal.members import MemberPages
    from plugyard.portal.metrics_pages import MetricsPages
    from plugyard.portal.namespaces_pages import NamespacePages
    from plugyard.portal.plugin_safety import PluginSafetyPages
    from plugyard.portal.plugins_pages import PluginPages
    from plugyard.portal.templates_pages import TemplatePages

    def provide_portal_settings() -> PortalSettings:
        return settings

    return Router(
        path="/",
        route_handlers=[
            AuthPages,
            DashboardPages,
            HistoryPages,
            MetricsPages,
            ExperimentPages,
            MemberPages,
            NamespacePages,
            PluginPages,
            PluginSafetyPages,
            TemplatePages,
        ],
        dependencies={
            "portal_settings": Provide(provide_portal_settings, sync_to_thread=False),
            "user": Provide(web.provide_signed_in),
            "viewer": Provide(web.provide_viewer),
            "editor": Provide(web.provide_editor),
            "owner": Provide(web.provide_owner),
        },
        exception_handlers={
            web.LoginRequired: web.on_login_required,
            DomainError: web.on_domain_error,
            HTTPException: web.on_http_error,
        },
        include_in_schema=False,
    )


def static_router() -> Router:
    """The portal's CSS, JavaScript and icons, served by the app itself (no CDN)."""
    return create_static_files_router(
        path="/static/portal", directories=[web.STATIC_DIR], name="portal-static", include_in_schema=False
    )
