"""The OpenAPI document tells the truth: nullable fields, numbers as numbers, each operation's
authentication and the error statuses the shell really answers, with the error schema."""
from __future__ import annotations

from tests.conftest import basic_auth


def spec(client, make_user):
    response = client.get("/api/v1/openapi.json", headers=basic_auth(make_user("operator").username))
    assert response.status_code == 200
    return response.json


def test_every_operation_declares_its_authentication_and_error_statuses(client, make_user):
    doc = spec(client, make_user)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["basicAuth"] == {"type": "http", "scheme": "basic"}
    assert schemes["sessionCookie"]["in"] == "cookie" and schemes["csrfHeader"]["name"] == "X-CSRFToken"
    missing = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            expected = {"401", "403", "503"} | ({"404"} if "{" in path else set())
            if method != "get":
                expected |= {"400", "409", "413", "415", "422"}
                assert {"sessionCookie": [], "csrfHeader": []} in operation["security"], (method, path)
            assert {"basicAuth": []} in operation["security"], (method, path)
            lacking = expected - set(operation["responses"])
            if lacking:
                missing.append(f"{method.upper()} {path}: {sorted(lacking)}")
    assert not missing, missing
    error = doc["components"]["responses"]["UNPROCESSABLE_ENTITY"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}


def test_fields_answered_as_null_or_as_numbers_are_documented_so(client, make_user):
    schemas = spec(client, make_user)["components"]["schemas"]
    assert schemas["User"]["properties"]["deactivated_at"]["nullable"] is True
    criteria = schemas["CbuAcceptanceCriteria"]["properties"]
    for name in ("approved_at", "approved_by", "min_tnc_cells", "min_cd34_cells"):
        assert criteria[name].get("nullable") is True, name
    for name in ("min_tnc_cells", "min_cd34_cells"):
        assert {"type": "number"} in criteria[name]["oneOf"], name
