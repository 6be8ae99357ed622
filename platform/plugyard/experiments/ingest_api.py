"""HTTP API: where gateways report experiment visitors and conversions (HMAC-signed, no token)."""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import State

from plugyard import signing
from plugyard.deps import DbConn
from plugyard.errors import InvalidInput, Unauthorized
from plugyard.experiments.results import INGEST_PATH, Report, ReportResult, ResultsService

_DECODER = msgspec.json.Decoder(Report)


class ExperimentIngestController(Controller):
    """Gateway reports of experiment traffic; a replayed batch id changes nothing."""

    path = INGEST_PATH
    tags = ["experiments"]
    security = [{}]

    @post("/", summary="Ingest a gateway experiment report", status_code=200)
    async def ingest(self, request: Request[object, object, State], conn: DbConn) -> ReportResult:
        """Verify the gateway signature, then store visitors and conversions once."""
        body = await request.body()
        secret: str = request.app.state.experiment_gateway_secret
        if not secret:
            raise Unauthorized("the control plane has no gateway secret", slug="unsigned")
        failure = signing.verify(
            secret, dict(request.headers), method="POST", path=request.url.path, body=body
        )
        if failure is not None:
            raise Unauthorized("the report signature does not verify", slug=failure)
        try:
            report = _DECODER.decode(body)
        except msgspec.ValidationError as exc:
            raise InvalidInput(str(exc), field="body", slug="invalid-report") from None
        except msgspec.DecodeError as exc:
            raise InvalidInput(str(exc), field="body", slug="invalid-report") from None
        return await ResultsService(conn).ingest(report)
