"""Every /v1 route behind a key: 401 without or with an unknown key, 403 for a wrong role."""

from __future__ import annotations

import logging

import pytest

from tests.utils.http import auth

# (method, path, body, roles allowed besides admin)
ROUTES = [
    ("GET", "/v1/users/{user}/recommendations", None, {"read", "marketer"}),
    ("GET", "/v1/items/{item}/similar", None, {"read", "marketer"}),
    ("POST", "/v1/recommendations/cross-sell", {"items": ["{item}"]}, {"read", "marketer"}),
    ("POST", "/v1/events", {"events": [{"user_id": "x", "item_id": "{item}"}]}, {"ingest"}),
    ("DELETE", "/v1/users/someone", None, set()),
    ("GET", "/v1/admin/model", None, set()),
    ("POST", "/v1/admin/reload", None, set()),
]
ROLES = ("admin", "marketer", "ingest", "read")


def _call(client, server, method, path, body, headers):
    user, item = str(server.engine.user_ids[1]), str(server.engine.item_ids[1])
    path = path.format(user=user, item=item)
    if body is not None:
        body = {
            key: [
                {k: v.format(item=item) for k, v in e.items()} if isinstance(e, dict)
                else e.format(item=item)
                for e in value
            ]
            for key, value in body.items()
        }  # fmt: skip
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("method, path, body, allowed", ROUTES)
def test_role_matrix(client, server, keys, method, path, body, allowed):
    for role in ROLES:
        response = _call(client, server, method, path, body, auth(keys[role]))
        if role == "admin" or role in allowed:
            assert response.status_code == 200, (role, path, response.text)
        else:
            assert response.status_code == 403, (role, path)
            assert "role" in response.json()["detail"]


@pytest.mark.parametrize("method, path, body, allowed", ROUTES)
def test_missing_and_unknown_keys_are_401(client, server, method, path, body, allowed):
    missing = _call(client, server, method, path, body, {})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    unknown = _call(client, server, method, path, body, auth("rk_not-a-real-key-000000"))
    assert unknown.status_code == 401
    basic = _call(client, server, method, path, body, {"Authorization": "Basic abc"})
    assert basic.status_code == 401


def test_revoked_key_is_refused(client, server, store):
    plaintext, record = store.keys.create("read", "soon revoked")
    store.keys.revoke(record.id)
    response = client.get("/v1/items/x/similar", headers=auth(plaintext))
    assert response.status_code == 401


def test_keys_never_reach_the_logs(client, server, keys, caplog):
    caplog.set_level(logging.DEBUG)
    for role in ROLES:
        _call(client, server, "GET", "/v1/admin/model", None, auth(keys[role]))
    for key in keys.values():
        assert key not in caplog.text
