"""HTTP helpers for route tests."""


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
