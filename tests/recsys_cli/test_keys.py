"""`recsys keys create / list / revoke` against a SQLite store in the test's directory."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'keys.db'}"


def test_create_list_and_revoke_a_key(recsys, url):
    created = recsys("keys", "create", "--role", "marketer", "--name", "newsletter",
                     "--database-url", url, "--json")  # fmt: skip
    assert created.code == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["role"] == "marketer" and key["name"] == "newsletter"
    assert key["key"].startswith(key["prefix"])

    listed = recsys("keys", "list", "--database-url", url, "--json")
    assert listed.code == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["id"] == key["id"] and row["revoked_at"] is None
    assert key["key"] not in listed.stdout  # the secret is shown once, at creation

    revoked = recsys("keys", "revoke", str(key["id"]), "--database-url", url)
    assert revoked.code == 0 and f"revoked key {key['id']}" in revoked.stdout
    [row] = json.loads(recsys("keys", "list", "--database-url", url, "--json").stdout)
    assert row["revoked_at"] is not None
    plain = recsys("keys", "list", "--database-url", url)
    assert "revoked" in plain.stdout and "newsletter" in plain.stdout


def test_plain_create_prints_the_key_alone_on_stdout(recsys, url):
    created = recsys("keys", "create", "--role", "read", "--database-url", url)
    assert created.code == 0
    [key] = created.stdout.strip().splitlines()
    assert "store it now" in created.stderr and key.split("_")[0] in created.stderr + key


def test_an_unknown_role_is_a_usage_error_naming_the_option(recsys, url):
    result = recsys("keys", "create", "--role", "boss", "--database-url", url)
    assert result.code == 2 and "--role" in result.stderr and "boss" in result.stderr


def test_revoking_an_unknown_key_names_the_id(recsys, url):
    recsys("keys", "list", "--database-url", url)  # creates the store
    result = recsys("keys", "revoke", "999", "--database-url", url)
    assert result.code == 2 and "no key with id 999" in result.stderr
