"""Viewers see everything and change nothing: every portal POST answers 403 to a viewer."""

from __future__ import annotations

import re
import uuid

import pytest

from plugyard.app import create_app
from plugyard.settings import Settings
from tests.conftest import ControlPlane
from tests.integration.helpers import plugin_code
from tests.integration.portal_helpers import Portal, cli_invite, signed_in

pytestmark = pytest.mark.e2e

_PARAM = re.compile(r"\{(\w+):(\w+)\}")


def portal_posts(settings: Settings) -> list[str]:
    """Every POST path of the portal's tenant pages, as registered in the real app."""
    app = create_app(settings)
    paths = []
    for route in app.routes:
        methods = getattr(route, "methods", set())
        if route.path.startswith("/t/") and "POST" in methods:
            paths.append(route.path)
    return sorted(set(paths))


def test_a_viewer_is_refused_every_post_and_sees_no_forms(
    control_plane: ControlPlane, database_url: str, settings: Settings, unique: str
) -> None:
    tenant = f"view-{unique}"
    owner = signed_in(control_plane.url, database_url, tenant, f"o-{unique}@example.com")
    assert owner.post(f"/t/{tenant}/namespaces", {"name": "prod"}).status_code == 303
    assert owner.post(f"/t/{tenant}/ns/prod/plugins", {"plugin_name": "hello"}).status_code == 303
    upload = owner.post(
        f"/t/{tenant}/ns/prod/p/hello/upload",
        files=[("files", ("index.js", plugin_code("v1").encode(), "text/javascript"))],
    )
    assert upload.status_code == 303, upload.text
    viewer = Portal(control_plane.url)
    assert (
        viewer.accept(cli_invite(database_url, tenant, f"v-{unique}@example.com", "viewer")).status_code
        == 303
    )

    values = {
        "tenant": tenant,
        "namespace": "prod",
        "plugin": "hello",
        "number": "1",
        "key": "exp",
        "action": "start",
        "name": "SECRET",
    }
    posts = portal_posts(settings)
    assert len(posts) >= 20, posts  # the enumeration itself must find the portal's forms
    for template in posts:
        path = _PARAM.sub(lambda m: values.get(m[1], str(uuid.uuid4())), template)
        answer = viewer.post(path, {"name": "x", "role": "owner", "email": "x@example.com"})
        assert answer.status_code == 403, f"{template}: {answer.status_code}"
        assert "change nothing" in answer.text or "only an owner" in answer.text

    # Nothing changed, and the pages a viewer sees carry no change forms (sign-out aside).
    assert "No versions" not in owner.get(f"/t/{tenant}/ns/prod/p/hello/").text
    for page in (
        f"/t/{tenant}",
        f"/t/{tenant}/ns/prod/",
        f"/t/{tenant}/ns/prod/p/hello/",
        f"/t/{tenant}/ns/prod/p/hello/v/1",
        f"/t/{tenant}/ns/prod/experiments/",
        f"/t/{tenant}/members",
        f"/t/{tenant}/tokens",
        f"/t/{tenant}/metrics",
        f"/t/{tenant}/deployments",
        f"/t/{tenant}/audit",
    ):
        html = viewer.get(page)
        assert html.status_code == 200, page
        actions = re.findall(r'<form method="post" action="([^"]+)"', html.text)
        assert actions == ["/logout"], f"{page}: {actions}"
