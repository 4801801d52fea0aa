"""The web shell: login, home, account, administration of users, the audit trail pages, error pages,
security headers, and the one commit per request."""
from __future__ import annotations

import base64
import math
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import joinedload
from werkzeug.exceptions import HTTPException

from app import db
from app.audit import ANONYMOUS, Actor, history_for, reset_actor, search_trail, set_actor, verify_chain
from app.errors import Conflict, DomainError, ValidationFailed
from app.outage import outage
from app.permissions import PERMISSIONS, ROLES, NotAuthenticated, can, may_see_record_history, require
from app.schemas import check_text
from app.shell import NAV_ITEMS
from app.signatures import MEANINGS, signatures_for
from app.users import (
    User,
    authenticate,
    change_password,
    create_user,
    deactivate_user,
    get_user,
    list_users,
    set_roles,
    unlock_user,
)

bp = Blueprint("core", __name__)
csrf = CSRFProtect()
login_manager = LoginManager()

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


class SiteSessionInterface(SecureCookieSessionInterface):
    """Session cookies are marked Secure whenever the request arrived over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        setting = app.config.get("SESSION_COOKIE_SECURE", "auto")
        if setting == "auto":
            return bool(request) and request.is_secure
        return str(setting).lower() in ("1", "true", "yes", True)


def is_api_request() -> bool:
    return request.path.startswith("/api/")


# --- formatting ---------------------------------------------------------------------------------

def site_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["SITE_TIMEZONE"])


def site_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S %Z") -> str:
    """A UTC timestamp shown in the site's time zone."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(site_zone()).strftime(fmt)


def format_cells(value: float | int | None, digits: int = 2) -> str:
    """A cell count as '1.2 x 10^10'."""
    if value is None:
        return ""
    value = float(value)
    if value == 0:
        return "0"
    exponent = int(math.floor(math.log10(abs(value))))
    mantissa = round(value / 10 ** exponent, digits)
    if abs(mantissa) >= 10:
        mantissa /= 10
        exponent += 1
    text = f"{mantissa:.{digits}f}".rstrip("0").rstrip(".")
    return f"{text} x 10^{exponent}"


def format_number(value: float | int | None) -> str:
    """Any number on a page or in a record: powers of ten from 100 000 up (and below 0.001), as cell
    counts are, otherwise plain decimals without trailing zeros; never '3e+07', '300000' or 'None'."""
    if value is None:
        return ""
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return "not a number"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return format_cells(value)
    return f"{round(value, 4):.10g}"


# --- request lifecycle --------------------------------------------------------------------------

@login_manager.user_loader
def _load_user(session_id: str) -> User | None:
    # "<id>.<stamp>": a session opened before a change of the user's roles, password or status is void.
    user_id, _, stamp = session_id.partition(".")
    if not (user_id.isascii() and user_id.isdigit()):
        return None
    # Roles in the same statement: every request needs them for the permission checks.
    user = db.session.get(User, int(user_id), options=[joinedload(User.roles)])
    if user is None or not user.is_active or stamp != user.session_stamp():
        return None
    return user


def renew_session(user: User) -> None:
    """A new session (and so a new CSRF token) for the user: at login and after a privilege change."""
    session.clear()
    g.pop("csrf_token", None)  # Flask-WTF keeps the request's token here too
    login_user(user)
    session["last_active"] = datetime.now(timezone.utc).timestamp()


@login_manager.request_loader
def _load_user_from_basic_auth(req: Any) -> User | None:
    """API clients send both credential components with each request (HTTP Basic over TLS)."""
    header = req.headers.get("Authorization", "")
    if not req.path.startswith("/api/") or not header.startswith("Basic "):
        return None
    try:
        username, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        g.auth_error = "Malformed Authorization header."
        return None
    try:
        user = authenticate(db.session, username, password, context="api login")
    except DomainError as exc:
        g.auth_error = exc.message
        return None
    g.basic_auth = True
    return user if user.is_active else None


def is_static_request() -> bool:
    endpoint = request.endpoint or ""
    return endpoint == "static" or endpoint.endswith(".static")


def _start_request_as_anonymous() -> None:
    """First thing in every request, before any user is loaded (HTTP Basic runs in the request loader):
    nobody is known yet, so whatever happens until a user is loaded is done by "anonymous", never by
    the previous request's user."""
    g.actor_token = set_actor(ANONYMOUS)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit and (request.content_length or 0) > limit:
        abort(413)  # refused before anything reads the body (or loads a user)


def _forget_request_actor(_exc: Any) -> None:
    token = g.pop("actor_token", None)
    if token is not None:
        reset_actor(token)


def _before_request() -> Any:
    if is_static_request():
        return None  # assets need no user, no idle-timer refresh and no database round trip
    user = current_user
    if user.is_authenticated:
        set_actor(Actor(user.id, user.username))
        if not g.get("basic_auth"):
            now = datetime.now(timezone.utc).timestamp()
            last = session.get("last_active", now)
            timeout = current_app.config["IDLE_TIMEOUT_MINUTES"] * 60
            if now - last > timeout:
                logout_user()
                session.clear()
                message = (f"You were logged out after {current_app.config['IDLE_TIMEOUT_MINUTES']} minutes "
                           "without activity. Please log in again.")
                if is_api_request():
                    return jsonify(code=401, status="Unauthorized", message=message), 401
                flash(message, "warning")
                return redirect(url_for("core.login", next=request.full_path))
            session["last_active"] = now
        if user.must_change_password and request.endpoint not in PASSWORD_CHANGE_ENDPOINTS:
            message = "Please set a new password before you continue."
            if is_api_request():
                return _error_response(403, "Password change required",
                                       message + " Change it on the web page /account/password.")
            flash(message, "warning")
            return redirect(url_for("core.account_password"))
    elif is_api_request():
        return None  # the view answers 401 before any form token is looked at: authentication comes first
    if request.method not in SAFE_METHODS and not g.get("basic_auth"):
        csrf.protect()
    if is_api_request():
        return _refuse_a_body_that_is_not_json()
    _refuse_control_characters_in_form()
    return None


def _refuse_a_body_that_is_not_json() -> Any:
    """JSON endpoints read JSON only: anything else is a 415, not a list of "missing" fields."""
    if request.method in SAFE_METHODS or request.url_rule is None:
        return None
    has_body = bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if has_body and not request.is_json:
        return _error_response(415, "Unsupported media type",
                               "Send the request body as JSON (Content-Type: application/json); nothing was saved.")
    return None


def _refuse_control_characters_in_form() -> None:
    """Tablet forms: every typed value is checked as the schemas check text (tab and line breaks only in
    long text), so a control character is refused in words before anything is saved."""
    if request.method in SAFE_METHODS:
        return
    for name, value in request.form.items(multi=True):
        check_text(name, value)


# what a user who must change the initial password may still reach
PASSWORD_CHANGE_ENDPOINTS = {"core.account_password", "core.logout", "core.login", "core.health",
                             "core.health_live", "core.health_ready"}


def _commit_unit_of_work(response: Any) -> Any:
    """Exactly one commit per request, here; any refusal or error rolls everything back."""
    if response.status_code >= 400:
        db.session.rollback()
        return response
    answered = db.session().info.get("database_answered", False)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return _error_response(409, "Conflict", CONFLICT_MESSAGE)
    except (DataError, OverflowError, UnicodeEncodeError):
        db.session.rollback()  # the database refused a value only when the audit entries were written
        return _error_response(422, "Value refused", OUT_OF_RANGE_MESSAGE)
    except OperationalError as exc:
        return _database_unavailable(exc)
    if answered:
        outage.answered()
    return response


CONFLICT_MESSAGE = ("Another change to the same record was saved first, or the record already exists; "
                    "nothing of yours was saved. Reload the page and check before trying again.")


OUT_OF_RANGE_MESSAGE = ("The database refused a value in the request (a number or text too large to record, or "
                        "a character it cannot store); nothing was saved. Check the values and try again.")


RETRY_AFTER_SECONDS = 10


def _database_unavailable(exc: Exception) -> Any:
    """A 503 that needs nothing from the database: a page that names no user, or JSON; logged once per outage."""
    try:
        db.session.rollback()
    except OperationalError:
        pass  # the connection is gone already: nothing of this request was saved
    outage.failed(exc)
    if is_api_request() or request.accept_mimetypes.best == "application/json":
        response = jsonify(code=503, status="Database unavailable", message=ERROR_ADVICE[503])
    else:
        refresh = request.method in SAFE_METHODS
        retry = request.full_path if refresh else safe_next(_same_site_referrer())
        # straight from the template, without the context processors (Flask-Login's would load the user)
        page = current_app.jinja_env.get_template("errors/unavailable.html").render(
            retry_after=RETRY_AFTER_SECONDS, refresh=refresh, retry_url=retry, url_for=url_for)
        response = current_app.make_response(page)
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _same_site_referrer() -> str | None:
    referrer = request.referrer or ""
    root = request.host_url
    return "/" + referrer[len(root):] if referrer.startswith(root) else None


def _note_database_answered(session: Any, _transaction: Any, _connection: Any) -> None:
    session.info["database_answered"] = True


def _security_headers(response: Any) -> Any:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


def _teardown(_exc: Any) -> None:
    db.session.remove()


# --- errors -------------------------------------------------------------------------------------

ERROR_ADVICE = {
    400: "The request could not be understood. Go back, reload the page and try again.",
    401: "Please log in.",
    403: "Your role does not allow this. Ask your supervisor or an administrator if you need access.",
    404: "The page or record does not exist. Check the address or search for the record.",
    405: "That action is not available here. Use the buttons on the page.",
    409: "The record changed or is in a state that does not allow this. Reload the page and check.",
    413: "The request is too large; nothing was saved. Send less at once.",
    415: "Send the request body as JSON; nothing was saved.",
    422: "Please correct the entry and try again.",
    500: "Something went wrong on the server and nothing was saved. Try again; if it happens again, "
         "note the time and tell your administrator.",
    503: "The database is busy or unavailable; nothing was saved. Wait a moment and try again.",
}


def _error_response(status: int, title: str, message: str, errors: dict | None = None,
                    link: str | None = None) -> Any:
    if is_api_request() or request.accept_mimetypes.best == "application/json":
        body = {"code": status, "status": title, "message": message}
        if errors:
            body["errors"] = errors
        return jsonify(body), status
    return render_template("errors/error.html", status=status, title=title, message=message,
                           errors=errors or {}, link=link, advice=ERROR_ADVICE.get(status, "")), status


def handle_http_exception(exc: HTTPException) -> Any:
    """HTTP errors as pages, or as JSON for the API with per-field messages flattened from every location."""
    if is_api_request() and getattr(exc, "data", None):  # webargs/marshmallow validation via flask-smorest
        errors: dict[str, Any] = {}
        for location in exc.data.get("messages", {}).values():
            errors.update(location if isinstance(location, dict) else {"_": location})
        return _error_response(exc.code or 400, exc.name, "Please correct the highlighted fields.", errors)
    if exc.code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
        return _error_response(413, "Request too large", f"The request is larger than {limit // 1024} KB, the most "
                               "this system accepts at once; nothing was saved.")
    return _error_response(exc.code or 500, exc.name, exc.description if exc.code != 500 else ERROR_ADVICE[500])


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError) -> Any:
        db.session.rollback()
        return _error_response(exc.status_code, exc.title, exc.message, exc.errors, exc.link)

    @app.errorhandler(NotAuthenticated)
    def _not_authenticated(_exc: NotAuthenticated) -> Any:
        if is_api_request():
            message = g.get("auth_error") or "Authentication required: send your user ID and password."
            resp, status = _error_response(401, "Unauthorized", message)
            resp.headers["WWW-Authenticate"] = 'Basic realm="nkmes"'
            return resp, status
        return redirect(url_for("core.login", next=request.full_path))

    @app.errorhandler(IntegrityError)
    def _constraint_refused(_exc: IntegrityError) -> Any:
        db.session.rollback()  # a concurrent change or a duplicate reached the database first
        return _error_response(409, "Conflict", CONFLICT_MESSAGE)

    @app.errorhandler(DataError)
    @app.errorhandler(OverflowError)
    @app.errorhandler(UnicodeEncodeError)
    def _value_out_of_range(_exc: Exception) -> Any:
        db.session.rollback()  # a value the database cannot store reached it
        return _error_response(422, "Value refused", OUT_OF_RANGE_MESSAGE)

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Any:
        return _error_response(400, "Form expired or invalid", "The form's security token is missing or "
                               "expired; nothing was saved. Reload the page and submit again.")

    @app.errorhandler(OperationalError)
    def _db_unavailable(exc: OperationalError) -> Any:
        return _database_unavailable(exc)

    app.register_error_handler(HTTPException, handle_http_exception)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        db.session.rollback()
        current_app.logger.exception("unhandled error")
        return _error_response(500, "Server error", ERROR_ADVICE[500])


# --- helpers for views --------------------------------------------------------------------------

def form_value(name: str, default: str = "") -> str:
    return (request.form.get(name) or default).strip()


def form_date(name: str) -> date | None:
    """A date typed in a form field (YYYY-MM-DD), None when left empty, refused in words otherwise."""
    raw = form_value(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(f"'{raw}' is not a date (YYYY-MM-DD).", errors={name: ["A date."]}) from None


def record_history(table: str, record_id: Any) -> list[Any]:
    return history_for(db.session, table, record_id)


def parse_local_datetime(text: str | None) -> datetime | None:
    """A date or date-time typed in the site zone, as UTC."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationFailed(f"'{text}' is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM).") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=site_zone())
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValidationFailed(f"'{text}' is outside the range of dates this system records.") from None


def safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("core.home")


# --- views --------------------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(url_for("core.home"))
        return render_template("app/login.html", next=request.args.get("next", ""))
    username = form_value("username")
    try:
        user = authenticate(db.session, username, request.form.get("password", ""))
    except DomainError as exc:
        return render_template("app/login.html", error=exc.message, username=username,
                               next=form_value("next")), 401
    renew_session(user)  # nothing from before the login (its CSRF token included) stays valid
    set_actor(Actor(user.id, user.username))
    if user.must_change_password:
        flash("Please set a new password before you continue.", "warning")
        return redirect(url_for("core.account_password"))
    return redirect(safe_next(form_value("next")))


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("core.login"))


def readiness_engine() -> Any:
    return db.get_engine(current_app.config["DATABASE_URL"])


@bp.route("/health/live")
def health_live() -> Any:
    """Liveness: the process answers requests (the database is not asked)."""
    return jsonify(status="ok")


@bp.route("/health")
@bp.route("/health/ready", endpoint="health_ready")
def health() -> Any:
    """Readiness: the database answers a trivial query now; 503 while it does not."""
    try:
        # a pooled DBAPI connection and one trivial statement: no BEGIN, so it never waits for a writer
        connection = readiness_engine().raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        finally:
            connection.close()
    except Exception as exc:  # noqa: BLE001  (the driver's own errors come unwrapped here: all mean "not ready")
        outage.failed(exc)
        return jsonify(status="unavailable", database="not answering"), 503
    outage.answered()
    return jsonify(status="ok", database="ok")


@bp.route("/")
@require("home.view")
def home() -> Any:
    tiles = [item for item in NAV_ITEMS if can(current_user, item.permission)]
    return render_template("app/home.html", tiles=tiles)


@bp.route("/account/password", methods=["GET", "POST"])
@require("account.change_password")
def account_password() -> Any:
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        try:
            authenticate(db.session, current_user.username, request.form.get("current_password", ""),
                         context="password change")
            if request.form.get("new_password") != request.form.get("confirm_password"):
                raise ValidationFailed("The two new passwords differ.", errors={"confirm_password": ["Must match."]})
            change_password(db.session, current_user, request.form.get("new_password", ""))
            db.session.flush()
            renew_session(current_user._get_current_object())
        except DomainError as exc:
            db.session.rollback()
            errors = dict(exc.errors) or {"current_password": [exc.message]}
            if "password" in errors:
                errors["new_password"] = errors.pop("password")
            return render_template("app/password.html", errors=errors, message=exc.message), exc.status_code
        flash("Your password was changed.", "success")
        return redirect(url_for("core.home"))
    return render_template("app/password.html", errors=errors)


@bp.route("/admin/users")
@require("users.view")
def admin_users() -> Any:
    users = list_users(db.session)
    return render_template("app/users.html", users=users, roles=ROLES)


@bp.route("/admin/users/new", methods=["GET", "POST"])
@require("users.manage")
def admin_user_new() -> Any:
    if request.method == "POST":
        try:
            user = create_user(db.session, username=form_value("username"), full_name=form_value("full_name"),
                               email=form_value("email") or None, password=request.form.get("password", ""),
                               roles=request.form.getlist("roles"), must_change_password=True)
        except DomainError as exc:
            db.session.rollback()
            return render_template("app/user_new.html", roles=ROLES, errors=exc.errors, message=exc.message,
                                   form=request.form, selected_roles=request.form.getlist("roles")), exc.status_code
        flash(f"User {user.username} created. They must change the password at first log-in.", "success")
        return redirect(url_for("core.admin_user", user_id=user.id))
    return render_template("app/user_new.html", roles=ROLES, errors={}, form={}, selected_roles=[])


@bp.route("/admin/users/<int:user_id>")
@require("users.view")
def admin_user(user_id: int) -> Any:
    from app.users import RoleChange

    user = get_user(db.session, user_id)
    changes = db.session.query(RoleChange).filter_by(user_id=user.id).order_by(RoleChange.id).all()
    role_changes = [(change, signatures_for(db.session, change)) for change in changes]
    return render_template("app/user.html", user=user, roles=ROLES, role_changes=role_changes,
                           history=record_history("user_account", user.id))


@bp.route("/admin/users/<int:user_id>/<action>", methods=["POST"])
@require("users.manage")
def admin_user_action(user_id: int, action: str) -> Any:
    user = get_user(db.session, user_id)
    reason = form_value("reason")
    if action == "roles":
        set_roles(db.session, user, request.form.getlist("roles"), reason, by=current_user,
                  username=form_value("sign_username"), password=request.form.get("sign_password", ""))
    elif action == "deactivate":
        deactivate_user(db.session, user, reason, by=current_user)
    elif action == "unlock":
        unlock_user(db.session, user, reason)
    elif action == "reset-password":
        if user.id == current_user.id:
            raise Conflict("Change your own password on your account page, not here.")
        change_password(db.session, user, request.form.get("password", ""), reason=reason or "reset by administrator")
        user.must_change_password = True
    else:
        abort(404)
    flash("Saved.", "success")
    return redirect(url_for("core.admin_user", user_id=user.id))


@bp.route("/admin/roles")
@require("users.view")
def admin_roles() -> Any:
    return render_template("app/roles.html", roles=ROLES, permissions=sorted(PERMISSIONS.items()))


@bp.route("/audit")
@require("audit.view")
def audit_trail() -> Any:
    try:
        page = max(int(request.args.get("page", 1)), 1)
    except ValueError:
        page = 1
    filters = {k: (request.args.get(k) or "").strip() for k in ("username", "table_name", "start", "end")}
    try:
        start = parse_local_datetime(filters["start"])
        end = parse_local_datetime(filters["end"])
    except ValidationFailed as exc:
        flash(exc.message, "error")
        start = end = None
    if end is not None and len(filters["end"]) == 10:
        end += timedelta(days=1)  # a date as the end means "to the end of that day"
    entries, total = search_trail(db.session, username=filters["username"] or None,
                                  table_name=filters["table_name"] or None, start=start, end=end, page=page)
    pages = max(1, math.ceil(total / 50))
    return render_template("app/audit.html", entries=entries, total=total, page=page, pages=pages,
                           filters=filters)


@bp.route("/audit/verify")
@require("audit.view")
def audit_verify() -> Any:
    result = verify_chain(db.session)
    return render_template("app/audit_verify.html", result=result)


@bp.route("/records/<table>/<record_id>/history")
@require("audit.record_history")
def record_history_page(table: str, record_id: str) -> Any:
    if not re.fullmatch(r"[a-z_]{1,80}", table) or table not in db.Base.metadata.tables:
        abort(404)
    if not may_see_record_history(current_user, table):
        abort(403, "Your role does not allow you to see these records, nor their history.")
    from app.shell import record_name

    entries = record_history(table, record_id)
    return render_template("app/record_history.html", table=table, record_id=record_id, entries=entries,
                           name=record_name(db.session, table, record_id))


def init_app(app: Flask) -> None:
    app.session_interface = SiteSessionInterface()
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "core.login"
    # the actor is reset before every other before-request function (extensions' included)
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request_as_anonymous)
    app.before_request(_before_request)
    app.teardown_request(_forget_request_actor)
    app.after_request(_security_headers)
    app.after_request(_commit_unit_of_work)  # registered last, so it runs first
    app.teardown_appcontext(_teardown)
    from sqlalchemy import event

    if not event.contains(db.session, "after_begin", _note_database_answered):
        event.listen(db.session, "after_begin", _note_database_answered)
    _register_error_handlers(app)
    app.jinja_env.filters["site_time"] = site_time
    app.jinja_env.filters["cells"] = format_cells
    app.jinja_env.filters["number"] = format_number
    app.jinja_env.globals.update(can=lambda perm: can(current_user, perm), nav_items=NAV_ITEMS,
                                 signatures_for=lambda rec: signatures_for(db.session, rec),
                                 record_history=record_history, meanings=MEANINGS,
                                 site_name=lambda: current_app.config["SITE_NAME"],
                                 site_timezone=lambda: current_app.config["SITE_TIMEZONE"])
    app.register_blueprint(bp)
