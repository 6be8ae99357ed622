import pytest

from plugyard.routes import patterns


def test_parse_normalises_and_splits() -> None:
    p = patterns.parse("Shop.Example.COM/api/*")
    assert (p.pattern, p.host, p.host_suffix, p.wildcard, p.path) == (
        "shop.example.com/api/*",
        "shop.example.com",
        "shop.example.com",
        False,
        "/api/*",
    )
    w = patterns.parse("*.example.com/*")
    assert (w.host_suffix, w.wildcard) == ("example.com", True)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "example.com",
        "http://example.com/*",
        "*/*",
        "ex*ample.com/*",
        "example.com/a*/b",
        "*.com/*",
        "example.com:80/*",
        "-bad.com/*",
        "example.com/?q=1",
        "a" * 301,
    ],
)
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(patterns.PatternError):
        patterns.parse(bad)


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("a.example.com/*", "a.example.com/x", True),
        ("a.example.com/*", "b.example.com/*", False),
        ("example.com/*", "a.example.com/*", False),
        ("*.example.com/*", "a.example.com/*", True),
        ("*.example.com/*", "a.b.example.com/*", True),
        ("*.example.com/*", "example.com/*", False),
        ("*.example.com/*", "*.b.example.com/*", True),
        ("*.a.example.com/*", "*.b.example.com/*", False),
        ("*.example.com/*", "notexample.com/*", False),
        ("*.example.com/*", "a.notexample.com/*", False),
    ],
)
def test_host_overlap(a: str, b: str, overlap: bool) -> None:
    pa, pb = patterns.parse(a), patterns.parse(b)
    assert patterns.hosts_overlap(pa, pb) is overlap
    assert patterns.hosts_overlap(pb, pa) is overlap
