"""engine.fetch against a real picture host on 127.0.0.1: loopback is refused unless
allow-listed, every redirect hop is checked, size caps hold."""

from __future__ import annotations

import pytest

from engine.fetch import FetchError, check_url, fetch


def test_loopback_is_refused_unless_allow_listed(picture_host):
    with pytest.raises(FetchError) as refused:
        fetch(f"{picture_host}/p.png")
    assert refused.value.code == "url_not_allowed" and "HOMEPILOT_FETCH_ALLOW" in \
        str(refused.value)
    body = fetch(f"{picture_host}/p.png", allow=["127.0.0.0/8"])
    assert body.startswith(b"\x89PNG")


def test_a_redirect_to_a_host_not_allowed_is_refused(picture_host):
    port = picture_host.rsplit(":", 1)[1]
    via_name = f"http://localhost:{port}"
    # "localhost" is allowed by name; the redirect leads to 127.0.0.1, which is not.
    with pytest.raises(FetchError) as refused:
        fetch(f"{via_name}/to?url={picture_host}/p.png", allow=["localhost"])
    assert refused.value.code == "url_not_allowed"
    assert fetch(f"{via_name}/to?url={via_name}/p.png", allow=["localhost"]).startswith(
        b"\x89PNG")


@pytest.mark.parametrize(("url", "code"), [
    ("ftp://example.com/p.png", "invalid_url"),
    ("http:///p.png", "invalid_url"),
    ("http://10.0.0.8/p.png", "url_not_allowed"),
    ("http://[::1]/p.png", "url_not_allowed"),
    ("http://169.254.169.254/", "url_not_allowed"),
    ("http://[64:ff9b::a9fe:a9fe]/", "url_not_allowed"),  # NAT64 of 169.254.169.254
    ("http://[2002:7f00:1::]/", "url_not_allowed"),  # 6to4 of 127.0.0.1
    ("http://[::ffff:10.0.0.1]/", "url_not_allowed"),
    ("https://example.com/a\tb.png", "invalid_url"),
    ("http://no-such-host.invalid/p.png", "unreachable_url"),
])
def test_urls_that_may_not_be_fetched_say_why(url, code):
    with pytest.raises(FetchError) as refused:
        check_url(url)
    assert refused.value.code == code


def test_size_cap_and_error_status_are_reported(picture_host):
    with pytest.raises(FetchError) as big:
        fetch(f"{picture_host}/p.png", allow=["127.0.0.1"], max_bytes=10)
    assert big.value.code == "too_large"
    with pytest.raises(FetchError) as missing:
        fetch(f"{picture_host}/gone.png", allow=["127.0.0.1"])
    assert missing.value.code == "fetch_failed" and "404" in str(missing.value)
