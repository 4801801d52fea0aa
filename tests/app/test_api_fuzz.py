"""The API fuzzed from its own OpenAPI document (schemathesis) on PostgreSQL, as a user of every role:
no server error, every status documented, every response in its documented schema."""
from __future__ import annotations

import base64

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from app import users as user_rules
from app.permissions import ALL_ROLES
from tests.conftest import PASSWORD

EXAMPLES_PER_OPERATION = 4  # per role: about 1,500 requests in all, a bounded part of the suite's time
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.mark.backends("postgresql")
def test_fuzzing_every_operation_as_every_role_finds_nothing(app, backend, db_session, make_user, monkeypatch):
    monkeypatch.setattr(user_rules.policy, "lockout_threshold", 10**9)  # wrong passwords must not lock the run out
    accounts = {role: make_user(role).username for role in sorted(ALL_ROLES)}
    spec = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    failures: dict[str, str] = {}
    calls = 0
    for role, username in accounts.items():
        headers = {"Authorization": "Basic " + base64.b64encode(f"{username}:{PASSWORD}".encode()).decode()}
        for operation in operations:
            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            @given(case=operation.as_strategy())
            def call(case):  # noqa: ANN001
                nonlocal calls
                calls += 1
                response = case.call(app=app, headers=headers)
                try:
                    case.validate_response(response, checks=CHECKS, headers=headers)
                except Exception as exc:  # noqa: BLE001  (every kind of check failure is collected)
                    failures.setdefault(f"{role} {operation.label}", str(exc)[:600])

            call()
    assert calls > 1000
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
