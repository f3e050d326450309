"""The console's session, CSRF and headers over the real app (TestClient; no browser needed)."""

from __future__ import annotations

import re

import pytest

from serving.console.app import CSP
from serving.console.session import COOKIE, csrf_of

PAGES = ["/console/", "/console/customers", "/console/customers/u0000", "/console/items",
         "/console/segments", "/console/campaigns", "/console/models"]  # fmt: skip


def _login_token(client) -> str:
    page = client.get("/console/login")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def sign_in(client, key: str):
    return client.post(
        "/console/login",
        data={"api_key": key, "csrf_token": _login_token(client), "next": "/console/customers"},
        follow_redirects=False,
    )


@pytest.mark.parametrize("path", PAGES)
def test_no_page_without_a_session(client, path):
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login?next=")


def test_no_fragment_without_a_session(client):
    answer = client.post(
        "/console/segments/preview", json={}, headers={"X-Requested-With": "fetch"}
    )
    assert answer.status_code == 401


def test_sign_in_sets_a_strict_http_only_cookie_and_goes_to_next(client, keys):
    answer = sign_in(client, keys["read"])
    assert answer.status_code == 303 and answer.headers["location"] == "/console/customers"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert client.get("/console/").status_code == 200


def test_sign_in_refuses_a_bad_key_and_a_missing_form_token(client, keys):
    answer = client.post(
        "/console/login",
        data={"api_key": "rk_nope", "csrf_token": _login_token(client)},
        follow_redirects=False,
    )
    assert answer.status_code == 401 and "unknown or revoked API key" in answer.text
    client.cookies.clear()
    forged = client.post(
        "/console/login", data={"api_key": keys["admin"], "csrf_token": "x"},
        follow_redirects=False,
    )  # fmt: skip
    assert forged.status_code == 403 and COOKIE not in forged.cookies


def test_an_ingest_key_opens_no_page_as_it_reads_nothing_on_the_api(client, keys):
    answer = sign_in(client, keys["ingest"])
    assert answer.status_code == 403 and "role ingest" in answer.text
    assert COOKIE not in answer.cookies
    client.cookies.set(COOKIE, keys["ingest"], path="/console")
    page = client.get("/console/customers/u0000", follow_redirects=False)
    assert page.status_code == 403 and "needs a key with role read" in page.text


def test_next_never_leaves_the_console(client, keys):
    answer = client.post(
        "/console/login",
        data={"api_key": keys["read"], "csrf_token": _login_token(client),
              "next": "https://evil.example/console/"},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.headers["location"] == "/console/"


def test_a_post_without_the_csrf_token_is_refused(client, keys):
    sign_in(client, keys["marketer"])
    assert client.post("/console/logout", data={}).status_code == 403
    assert client.post("/console/logout", data={"csrf_token": "0" * 64}).status_code == 403
    answer = client.post(
        "/console/logout", data={"csrf_token": csrf_of(keys["marketer"])}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert client.get("/console/", follow_redirects=False).status_code == 303  # signed out


def test_a_revoked_key_ends_the_session(client, keys, store, monkeypatch):
    monkeypatch.setattr("serving.deps.KEY_CACHE_SECONDS", 0.0)
    sign_in(client, keys["read"])
    assert client.get("/console/").status_code == 200
    record = store.keys.authenticate(keys["read"])
    store.keys.revoke(record.id)
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_security_headers_on_pages_errors_and_assets(client, keys):
    sign_in(client, keys["read"])
    for path in ("/console/", "/console/login", "/console/customers/nobody",
                 "/console/static/console.js"):  # fmt: skip
        answer = client.get(path)
        assert answer.headers["content-security-policy"] == CSP, path
        assert answer.headers["x-frame-options"] == "DENY", path
        assert answer.headers["x-content-type-options"] == "nosniff", path
    assert "unsafe-inline" not in CSP and "script-src 'self'" in CSP
    assert client.get("/console/").headers["cache-control"] == "no-store"
    missing = client.get("/console/customers/nobody")
    assert missing.status_code == 404 and "is not known" in missing.text


def test_templates_carry_no_inline_script_or_style(client, keys, store):
    store.customers.put("u-x", {"attributes": {"note": "<b>hi</b>"}})
    sign_in(client, keys["read"])
    for path in ("/console/login", "/console/", "/console/customers/u-x"):
        html = client.get(path).text
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
        assert " style=" not in html and "<style" not in html, path
        assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), path  # no onclick= handlers


def test_customer_attributes_are_escaped(client, keys, store):
    store.customers.put("u-x", {"attributes": {"note": "<script>alert(1)</script>"}})
    sign_in(client, keys["read"])
    html = client.get("/console/customers/u-x").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_console_is_not_part_of_the_api_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]
