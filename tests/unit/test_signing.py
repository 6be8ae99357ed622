import time

from plugyard import signing


def test_signed_request_verifies() -> None:
    headers = signing.sign("s3cret", method="put", path="/_plugyard/x", body=b"{}")
    assert signing.verify("s3cret", headers, method="PUT", path="/_plugyard/x", body=b"{}") is None


def test_any_change_breaks_the_signature() -> None:
    headers = signing.sign("s3cret", method="PUT", path="/_plugyard/x", body=b"{}")
    assert signing.verify("other", headers, method="PUT", path="/_plugyard/x", body=b"{}") == "bad-signature"
    assert signing.verify("s3cret", headers, method="PUT", path="/_plugyard/y", body=b"{}") == "bad-signature"
    assert (
        signing.verify("s3cret", headers, method="POST", path="/_plugyard/x", body=b"{}") == "bad-signature"
    )
    assert signing.verify("s3cret", headers, method="PUT", path="/_plugyard/x", body=b"[]") == "bad-signature"


def test_stale_and_unsigned() -> None:
    old = signing.sign("s", method="GET", path="/p", now=time.time() - signing.WINDOW_S - 5)
    assert signing.verify("s", old, method="GET", path="/p", body=b"") == "stale-request"
    assert signing.verify("s", {}, method="GET", path="/p", body=b"") == "unsigned"


def test_known_vector_matches_the_protocol_document() -> None:
    # docs/gateway-protocol.md: HMAC-SHA256 over "{timestamp}.{nonce}.{METHOD}.{path}.{body}".
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1700000000.abcdefabcdefabcd.PUT./p.{}", hashlib.sha256).hexdigest()
    got = signing.signature(
        "k", timestamp="1700000000", nonce="abcdefabcdefabcd", method="put", path="/p", body=b"{}"
    )
    assert got == "v1=" + expected
