"""The one place that decides what each role may do.

Domains declare their permissions with ``define_permissions`` when they load; every view and API
method is wrapped by ``require``, which the suite checks for every registered endpoint.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterable

from app.errors import PermissionDenied

ROLES: dict[str, str] = {
    "operator": "GMP operator",
    "supervisor": "Supervisor / second operator",
    "qc_analyst": "QC analyst",
    "qa": "Quality assurance",
    "clinician": "Clinician / pharmacist",
    "pharmacist": "Pharmacist (cell-therapy pharmacy)",
    "admin": "Administrator",
}
ALL_ROLES = frozenset(ROLES)

# permission name -> (roles allowed, description)
PERMISSIONS: dict[str, tuple[frozenset[str], str]] = {}


def define_permissions(table: dict[str, tuple[Iterable[str], str]]) -> None:
    """Declare permissions; declaring one name twice with different roles is a programming error."""
    for name, (roles, description) in table.items():
        roles = frozenset(roles)
        unknown = roles - ALL_ROLES
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)} for permission {name}")
        if name in PERMISSIONS and PERMISSIONS[name][0] != roles:
            raise ValueError(f"permission {name} declared twice with different roles")
        PERMISSIONS[name] = (roles, description)


define_permissions({
    "home.view": (ALL_ROLES, "See the home page and one's own account"),
    "account.change_password": (ALL_ROLES, "Change one's own password"),
    "api.docs": (ALL_ROLES, "Read the API documentation"),
    "users.view": ({"admin"}, "See user accounts, roles and lockouts"),
    "users.manage": ({"admin"}, "Create, deactivate, unlock users and assign roles"),
    "audit.view": ({"admin", "qa"}, "Search the whole audit trail"),
    "audit.record_history": (ALL_ROLES, "See the audit history of a record one's role may see"),
})


# audited table -> the permission that lets a role see such a record (and so its history); tables not
# named here have their history shown only to those who may search the whole trail
RECORD_VIEW_PERMISSIONS: dict[str, str] = {}


def define_record_views(table: dict[str, str]) -> None:
    """Declare which permission lets a role see the records of each table, and so their audit history."""
    for name, permission in table.items():
        roles_for(permission)
        RECORD_VIEW_PERMISSIONS[name] = permission


def may_see_record_history(user: Any, table: str) -> bool:
    """Whole-trail readers see every history; others only that of records their role may see."""
    if can(user, "audit.view"):
        return True
    permission = RECORD_VIEW_PERMISSIONS.get(table)
    return permission is not None and can(user, permission)


def roles_for(permission: str) -> frozenset[str]:
    try:
        return PERMISSIONS[permission][0]
    except KeyError:
        raise KeyError(f"undeclared permission {permission!r}") from None


def can(user: Any, permission: str) -> bool:
    """True when an active, authenticated user holds a role that the permission allows."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    return bool(set(user.role_names) & roles_for(permission))


def check(user: Any, permission: str) -> None:
    if not can(user, permission):
        raise PermissionDenied(
            "Your role does not allow this. Ask your supervisor or an administrator if you need access.",
        )


def require(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for views and API methods: log-in first, then the permission, before anything else."""
    roles_for(permission)  # fail at import for an undeclared permission

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from flask_login import current_user


            if not current_user.is_authenticated:
                raise NotAuthenticated("Please log in.")
            check(current_user, permission)
            return view(*args, **kwargs)

        wrapper.required_permission = permission  # type: ignore[attr-defined]
        return wrapper

    return decorator


class NotAuthenticated(Exception):
    """No logged-in user: the web layer redirects to the login page (HTML) or answers 401 (API)."""


def permission_of(view: Callable[..., Any], method: str) -> str | None:
    """The permission guarding a view for an HTTP method (MethodView classes are looked up per method)."""
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        handler = getattr(view_class, method.lower(), None)
        return getattr(handler, "required_permission", None)
    return getattr(view, "required_permission", None)


define_record_views({"user_account": "users.view", "user_role": "users.view", "user_role_change": "users.view"})
