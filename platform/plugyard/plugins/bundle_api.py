"""HTTP API: multipart uploads, version diffs and preview URLs."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath

from plugyard.deps import CurrentNamespace, CurrentPlugin, CurrentPrincipal, CurrentTenant, DbConn, Gateways
from plugyard.errors import InvalidInput
from plugyard.plugins.api import _version
from plugyard.plugins.folder import version_from_files
from plugyard.plugins.schemas import Preview, UploadMeta, VersionDiff, VersionPublished
from plugyard.plugins.service import PluginService
from plugyard.plugins.upload_limits import MAX_UPLOAD_BODY, bundle_size_guard

_PLUGIN = "/{plugin:str}"


class BundleController(Controller):
    """Uploads as multipart form data, diffs between versions, preview URLs."""

    path = "/v1/tenants/{tenant:str}/namespaces/{namespace:str}/plugins"
    tags = ["plugins"]

    @post(
        _PLUGIN + "/versions/upload",
        summary="Upload a version as multipart form data",
        status_code=201,
        guards=[bundle_size_guard],
        request_max_body_size=MAX_UPLOAD_BODY,
    )
    async def upload(
        self,
        plugin_row: CurrentPlugin,
        data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[VersionPublished]:
        """Store a version from form parts (201; 200 when the same bundle exists already).

        Each file part is a module named by its field name (type from `metadata.types` or the
        extension); an optional `metadata` field holds JSON settings (main_module,
        compatibility_date, compatibility_flags, limits, types, activate).
        """
        meta = UploadMeta()
        files: dict[str, bytes] = {}
        for name, value in data.items():
            if name == "metadata":
                text = value if isinstance(value, str) else (await value.read()).decode()
                try:
                    meta = msgspec.json.decode(text, type=UploadMeta)
                except msgspec.DecodeError as exc:
                    raise InvalidInput(f"metadata: {exc}", field="metadata") from None
            elif isinstance(value, UploadFile):
                files[name] = await value.read()
            else:
                raise InvalidInput(f"part {name!r} must be a file", field=name)
        if not files:
            raise InvalidInput("the upload holds no module files", field="modules")
        service = PluginService(conn, publisher)
        row = plugin_row
        version = version_from_files(files, meta)
        published = await service.publish(tenant_row, namespace_row, row, version, actor=principal.actor)
        body = VersionPublished(
            version=_version(published.version), created=published.created, deployment=published.deployment
        )
        return Response(body, status_code=201 if published.created else 200)

    @get(_PLUGIN + "/versions/{number:int}/diff/{other:int}", summary="Diff two versions")
    async def diff(
        self,
        plugin_row: CurrentPlugin,
        number: FromPath[int],
        other: FromPath[int],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
    ) -> VersionDiff:
        """What changed from version `number` to version `other`, module by module."""
        service = PluginService(conn, publisher)
        row = plugin_row
        return await service.diff(tenant_row, row, number, other)

    @post(
        _PLUGIN + "/versions/{number:int}/preview", summary="Get a preview URL of a version", status_code=201
    )
    async def preview(
        self,
        plugin_row: CurrentPlugin,
        number: FromPath[int],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
    ) -> Preview:
        """A URL that serves this version, active or not, with the plugin's current env.

        It works until it expires; previews never receive route traffic or count in live metrics.
        """
        service = PluginService(conn, publisher)
        row = plugin_row
        return await service.preview(tenant_row, namespace_row, row, number)
