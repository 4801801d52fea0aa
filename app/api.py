"""The REST API under /api/v1 (flask-smorest): core resources, the OpenAPI document and its docs page."""
from __future__ import annotations

from typing import Any

from flask import Flask, render_template
from flask.views import MethodView
from flask_login import current_user
from apispec import BasePlugin
from flask_smorest import Api, Blueprint
from marshmallow import fields, validate

from app import db
from app.audit import search_trail, verify_chain
from app.permissions import ROLES, require
from app.schemas import Schema
from app.users import create_user, deactivate_user, get_user, list_users, set_roles, unlock_user
from app.web import parse_local_datetime

API_PREFIX = "/api/v1"


class UserSchema(Schema):
    id = fields.Int(dump_only=True)
    username = fields.Str(required=True, validate=validate.Length(min=2, max=80))
    full_name = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(allow_none=True, load_default=None)
    roles = fields.List(fields.Str(validate=validate.OneOf(list(ROLES))), required=True,
                        validate=validate.Length(min=1), attribute="role_names")
    active = fields.Bool(dump_only=True)
    locked = fields.Bool(dump_only=True, attribute="is_locked")
    failed_attempts = fields.Int(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    deactivated_at = fields.DateTime(dump_only=True, allow_none=True)


class UserCreateSchema(UserSchema):
    password = fields.Str(required=True, load_only=True)


class ReasonSchema(Schema):
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000, error="A reason is required (at most 2000 characters)."))


class RolesSchema(ReasonSchema):
    """A role change, e-signed by the administrator making it: both credential components each time."""

    roles = fields.List(fields.Str(validate=validate.OneOf(list(ROLES))), required=True,
                        validate=validate.Length(min=1))
    username = fields.Str(required=True, error_messages={"required": "Sign with your user ID."})
    password = fields.Str(required=True, load_only=True, error_messages={"required": "Sign with your password."})


class AuditEntrySchema(Schema):
    id = fields.Int()
    occurred_at = fields.DateTime()
    actor_username = fields.Str()
    action = fields.Str()
    table_name = fields.Str()
    record_id = fields.Str()
    changes = fields.Method("_changes")
    reason = fields.Str(allow_none=True)
    prev_hash = fields.Str()
    entry_hash = fields.Str()

    def _changes(self, entry: Any) -> dict[str, Any]:
        return {k: {"old": old, "new": new} for k, old, new in entry.change_list}


class AuditQuerySchema(Schema):
    username = fields.Str(load_default=None)
    table_name = fields.Str(load_default=None)
    start = fields.Str(load_default=None, metadata={"description": "date or date-time in the site zone"})
    end = fields.Str(load_default=None)


class VerifySchema(Schema):
    ok = fields.Bool()
    checked = fields.Int()
    broken_id = fields.Int(allow_none=True)
    problem = fields.Str(allow_none=True)


users_blp = Blueprint("users_api", __name__, url_prefix=f"{API_PREFIX}/users", description="User accounts and roles")
audit_blp = Blueprint("audit_api", __name__, url_prefix=f"{API_PREFIX}/audit-entries", description="The audit trail")
me_blp = Blueprint("me_api", __name__, url_prefix=f"{API_PREFIX}/me", description="The authenticated user")


@me_blp.route("")
class Me(MethodView):
    @require("home.view")
    @me_blp.response(200, UserSchema)
    def get(self) -> Any:
        """The user these credentials belong to."""
        return current_user


@users_blp.route("")
class Users(MethodView):
    @require("users.view")
    @users_blp.response(200, UserSchema(many=True))
    def get(self) -> Any:
        """All user accounts, including deactivated ones."""
        return list_users(db.session)

    @require("users.manage")
    @users_blp.arguments(UserCreateSchema)
    @users_blp.response(201, UserSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a user; the password must be changed at first log-in."""
        return create_user(db.session, username=data["username"], full_name=data["full_name"],
                           email=data.get("email"), password=data["password"], roles=data["role_names"],
                           must_change_password=True)


@users_blp.route("/<int:user_id>")
class UserItem(MethodView):
    @require("users.view")
    @users_blp.response(200, UserSchema)
    def get(self, user_id: int) -> Any:
        return get_user(db.session, user_id)


@users_blp.route("/<int:user_id>/roles")
class UserRoles(MethodView):
    @require("users.manage")
    @users_blp.arguments(RolesSchema)
    @users_blp.response(200, UserSchema)
    def put(self, data: dict[str, Any], user_id: int) -> Any:
        """Replace another user's roles, with a reason and the administrator's e-signature."""
        user = get_user(db.session, user_id)
        set_roles(db.session, user, data["roles"], data["reason"], by=current_user,
                  username=data["username"], password=data["password"])
        return user


@users_blp.route("/<int:user_id>/deactivate")
class UserDeactivate(MethodView):
    @require("users.manage")
    @users_blp.arguments(ReasonSchema)
    @users_blp.response(200, UserSchema)
    def post(self, data: dict[str, Any], user_id: int) -> Any:
        """Deactivate an account; the username is never reused."""
        user = get_user(db.session, user_id)
        deactivate_user(db.session, user, data["reason"], by=current_user)
        return user


@users_blp.route("/<int:user_id>/unlock")
class UserUnlock(MethodView):
    @require("users.manage")
    @users_blp.arguments(ReasonSchema)
    @users_blp.response(200, UserSchema)
    def post(self, data: dict[str, Any], user_id: int) -> Any:
        """Unlock an account locked after failed attempts."""
        user = get_user(db.session, user_id)
        unlock_user(db.session, user, data["reason"])
        return user


@audit_blp.route("")
class AuditEntries(MethodView):
    @require("audit.view")
    @audit_blp.arguments(AuditQuerySchema, location="query")
    @audit_blp.response(200, AuditEntrySchema(many=True))
    @audit_blp.paginate()
    def get(self, query: dict[str, Any], pagination_parameters: Any) -> Any:
        """Search the trail by user, record type and time range, newest first."""
        items, total = search_trail(
            db.session, username=query["username"], table_name=query["table_name"],
            start=parse_local_datetime(query["start"]), end=parse_local_datetime(query["end"]),
            page=pagination_parameters.page, per_page=pagination_parameters.page_size)
        pagination_parameters.item_count = total
        return items


@audit_blp.route("/verify")
class AuditVerify(MethodView):
    @require("audit.view")
    @audit_blp.response(200, VerifySchema)
    def get(self) -> Any:
        """Walk the hash chain and name the first broken entry, if any."""
        return verify_chain(db.session)


class TruthfulContract(BasePlugin):
    """Adds to every operation of the document what the shell in front of it really does: how to
    authenticate, and the error statuses (with the error schema) that authentication, permissions, the
    record lookup, the body checks and the database can answer."""

    WRITES = {"post", "put", "patch", "delete"}
    STATUS_NAMES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                    409: "CONFLICT", 413: "REQUEST_ENTITY_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
                    422: "UNPROCESSABLE_ENTITY", 503: "SERVICE_UNAVAILABLE"}

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **_kwargs: Any) -> None:
        for method, operation in (operations or {}).items():
            if method not in {"get", "head", "options"} | self.WRITES:
                continue
            write = method in self.WRITES
            statuses = {401, 403, 503}
            if "{" in (path or ""):
                statuses.add(404)
            if write:
                statuses |= {400, 409, 413, 415, 422}
            elif operation.get("parameters"):
                statuses.add(422)
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                responses.setdefault(str(status), self.STATUS_NAMES[status])
            session = {"sessionCookie": [], "csrfHeader": []} if write else {"sessionCookie": []}
            operation.setdefault("security", [{"basicAuth": []}, session])


def init_app(app: Flask) -> Api:
    rest = Api(app, spec_kwargs={"info": {"description": "REST API of the NK cell therapy MES. Authenticate "
                                          "with HTTP Basic (user ID and password) or the web session cookie "
                                          "plus the X-CSRFToken header."}})
    rest.spec.components.security_scheme("basicAuth", {"type": "http", "scheme": "basic"})
    rest.spec.components.security_scheme("sessionCookie", {"type": "apiKey", "in": "cookie", "name": "session",
                                                           "description": "the web session after logging in"})
    rest.spec.components.security_scheme("csrfHeader", {"type": "apiKey", "in": "header", "name": "X-CSRFToken",
                                                        "description": "with the session cookie, on every write"})
    contract = TruthfulContract()
    contract.init_spec(rest.spec)
    rest.spec.plugins.append(contract)
    from werkzeug.exceptions import HTTPException

    from app.web import handle_http_exception

    app.register_error_handler(HTTPException, handle_http_exception)  # one error format for pages and API
    for blp in (me_blp, users_blp, audit_blp):
        rest.register_blueprint(blp)
    return rest


def finish(app: Flask, rest: Api) -> None:
    """After the domains registered their blueprints: guard the spec and add the docs page."""
    name = "api-docs.openapi_json"
    if name in app.view_functions:
        app.view_functions[name] = require("api.docs")(app.view_functions[name])

    @require("api.docs")
    def api_docs() -> Any:
        spec = rest.spec.to_dict()
        return render_template("app/api_docs.html", spec=spec)

    app.add_url_rule("/docs/api", "api_docs", api_docs)
