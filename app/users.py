"""Users, roles, passwords and lockout (21 CFR 11.10(d,g), 11.300)."""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
import hashlib

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, joinedload, mapped_column, relationship

from app.audit import Actor, Audited, acting_as, audit_reason, record_event
from app.db import Base, utcnow
from app.errors import Conflict, NotFound, ReasonRequired, ValidationFailed
from app.permissions import ALL_ROLES, ROLES
from app.signatures import Signable, sign_record

# Argon2id; create_app sets the parameters from the configuration (by default OWASP's recommended minimum
# memory and passes, in two lanes).
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=2)


def configure_hasher(time_cost: int, memory_cost: int, parallelism: int = 2) -> None:
    """Set the Argon2id cost; hashes made with other parameters still verify (they carry their own)."""
    global _hasher
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


class User(Audited, Base):
    """A person with unique credentials; never deleted, and a username is never reused."""

    __tablename__ = "user_account"
    __audit_redact__ = frozenset({"password_hash"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    password_changed_at: Mapped[datetime]
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    deactivated_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    roles: Mapped[list["UserRole"]] = relationship(back_populates="user", cascade="all, delete-orphan",
                                                   lazy="selectin")

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active and self.locked_at is None

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        # The session names the user and a stamp of what the user may do: a change of roles, password or
        # status makes every session opened before it invalid, so the user logs in again into a new one.
        return f"{self.id}.{self.session_stamp()}"

    def session_stamp(self) -> str:
        basis = f"{self.id}|{self.password_changed_at.isoformat()}|{','.join(self.role_names)}|{self.active}"
        return hashlib.sha256(basis.encode()).hexdigest()[:20]

    @property
    def role_names(self) -> list[str]:
        return sorted(r.role for r in self.roles)

    def has_role(self, role: str) -> bool:
        return role in self.role_names

    @property
    def is_locked(self) -> bool:
        return self.locked_at is not None


class UserRole(Audited, Base):
    """One role held by one user; removing a role is audited as a delete."""

    __tablename__ = "user_role"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    role: Mapped[str] = mapped_column(String(40))
    user: Mapped[User] = relationship(back_populates="roles")


class RoleChange(Audited, Signable, Base):
    """A change of a user's roles, e-signed by the administrator who made it, with the reason."""

    __tablename__ = "user_role_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    old_roles: Mapped[str] = mapped_column(String(300))
    new_roles: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime]


class PasswordHistory(Base):
    """Hashes of a user's earlier passwords, to refuse reuse of the last few."""

    __tablename__ = "password_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]


class PasswordPolicy:
    def __init__(self, min_length: int = 12, history: int = 5, lockout_threshold: int = 5):
        self.min_length = min_length
        self.history = history
        self.lockout_threshold = lockout_threshold


policy = PasswordPolicy()


def configure_policy(min_length: int, history: int, lockout_threshold: int) -> None:
    policy.min_length, policy.history, policy.lockout_threshold = min_length, history, lockout_threshold


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _check_password_rules(sess: Session, user: User | None, password: str) -> None:
    if len(password or "") < policy.min_length:
        raise ValidationFailed(
            f"The password must have at least {policy.min_length} characters.",
            errors={"password": [f"At least {policy.min_length} characters."]},
        )
    if user is not None and user.id is not None:
        recent = sess.execute(
            select(PasswordHistory.password_hash).where(PasswordHistory.user_id == user.id)
            .order_by(PasswordHistory.id.desc()).limit(policy.history)
        ).scalars().all()
        if any(password_matches(h, password) for h in recent):
            raise ValidationFailed(
                f"This password was used recently; choose one not among your last {policy.history}.",
                errors={"password": [f"Not one of your last {policy.history} passwords."]},
            )


def normalise_roles(roles: Iterable[str]) -> list[str]:
    roles = sorted({r.strip() for r in roles if r and r.strip()})
    unknown = [r for r in roles if r not in ALL_ROLES]
    if unknown:
        raise ValidationFailed(f"Unknown role: {', '.join(unknown)}.", errors={"roles": [f"Choose from {', '.join(ROLES)}."]})
    if not roles:
        raise ValidationFailed("A user needs at least one role.", errors={"roles": ["Choose at least one role."]})
    return roles


def create_user(sess: Session, *, username: str, full_name: str, password: str, roles: Iterable[str],
                email: str | None = None, must_change_password: bool = False) -> User:
    """Create an account; usernames are unique for ever, including those of deactivated users."""
    username = (username or "").strip().lower()
    full_name = (full_name or "").strip()
    errors: dict[str, list[str]] = {}
    if not username or not username.isascii() or not username.replace(".", "").replace("_", "").replace("-", "").isalnum():
        errors["username"] = ["Use the letters a-z, digits 0-9, dot, dash or underscore."]
    if not full_name:
        errors["full_name"] = ["The printed name is required: it appears on every signature."]
    if errors:
        raise ValidationFailed("Please correct the highlighted fields.", errors=errors)
    role_list = normalise_roles(roles)
    existing = sess.execute(select(User).where(func.lower(User.username) == username)).scalar_one_or_none()
    if existing is not None:
        state = "active" if existing.active else "deactivated"
        raise Conflict(f"The username {username!r} belongs to a {state} account and cannot be reused.",
                       errors={"username": ["Already taken (usernames are never reused)."]})
    _check_password_rules(sess, None, password)
    now = utcnow()
    user = User(username=username, full_name=full_name, email=email, password_hash=hash_password(password),
                password_changed_at=now, must_change_password=must_change_password, failed_attempts=0,
                active=True, created_at=now)
    user.roles = [UserRole(role=r) for r in role_list]
    sess.add(user)
    sess.flush()
    sess.add(PasswordHistory(user_id=user.id, password_hash=user.password_hash, created_at=now))
    sess.flush()
    return user


def change_password(sess: Session, user: User, new_password: str, *, reason: str = "password changed") -> None:
    _check_password_rules(sess, user, new_password)
    now = utcnow()
    with audit_reason(sess, reason):
        user.password_hash = hash_password(new_password)
        user.password_changed_at = now
        user.must_change_password = False
        sess.add(PasswordHistory(user_id=user.id, password_hash=user.password_hash, created_at=now))


def _other_active_admins(sess: Session, user: User) -> int:
    return sess.execute(
        select(func.count(User.id)).join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role == "admin", User.active.is_(True), User.locked_at.is_(None), User.id != user.id)
    ).scalar_one()


def _refuse_own_account(user: User, by: User | None, what: str) -> None:
    if by is not None and by.id == user.id:
        raise Conflict(f"You cannot {what} your own account: another administrator must do it.")


def set_roles(sess: Session, user: User, roles: Iterable[str], reason: str, *, by: User,
              username: str, password: str) -> RoleChange:
    """Replace a user's roles: never one's own, never leaving no active administrator, e-signed by the
    administrator (both credential components again) and audited with the reason."""
    wanted = normalise_roles(roles)
    if not (reason or "").strip():
        raise ReasonRequired("Changing roles needs a reason.", errors={"reason": ["Give the reason."]})
    if by is None:
        raise Conflict("A role change needs the e-signature of the administrator who makes it.")
    _refuse_own_account(user, by, "change the roles of")
    if not user.active:
        raise Conflict("This account is deactivated; its roles cannot be changed.")
    if user.has_role("admin") and "admin" not in wanted and not _other_active_admins(sess, user):
        raise Conflict("This is the last active administrator: give another user the admin role first.")
    old = user.role_names
    with audit_reason(sess, reason):
        current = {r.role: r for r in user.roles}
        for role, link in current.items():
            if role not in wanted:
                user.roles.remove(link)
        for role in wanted:
            if role not in current:
                user.roles.append(UserRole(role=role))
        change = RoleChange(user_id=user.id, old_roles=",".join(old), new_roles=",".join(wanted),
                            reason=reason.strip(), changed_at=utcnow())
        sess.add(change)
        sess.flush()
    sign_record(sess, change, meaning="approved", username=username, password=password, current_user=by,
                comment=reason.strip())
    return change


def deactivate_user(sess: Session, user: User, reason: str, by: User | None = None) -> None:
    if not (reason or "").strip():
        raise ReasonRequired("Deactivating an account needs a reason.", errors={"reason": ["Give the reason."]})
    if not user.active:
        raise Conflict("This account is already deactivated.")
    _refuse_own_account(user, by, "deactivate")
    if user.has_role("admin") and not _other_active_admins(sess, user):
        raise Conflict("This is the last active administrator: it cannot be deactivated.")
    with audit_reason(sess, reason):
        user.active = False
        user.deactivated_at = utcnow()


def unlock_user(sess: Session, user: User, reason: str) -> None:
    if not (reason or "").strip():
        raise ReasonRequired("Unlocking an account needs a reason.", errors={"reason": ["Give the reason."]})
    if not user.is_locked:
        raise Conflict("This account is not locked.")
    with audit_reason(sess, reason):
        user.locked_at = None
        user.failed_attempts = 0


def register_failed_attempt(sess: Session, user: User | None, username: str, context: str) -> None:
    """Count a wrong password towards lockout and write it to the audit trail.

    The caller's unit of work is rolled back first and this is committed on its own, because the
    attempt must be recorded even though the request itself is refused.
    """
    user_id = user.id if user is not None else None
    sess.rollback()
    if user_id is not None:
        user = sess.get(User, user_id)
    if user is None:
        record_event(sess, "user_account", username or "?", "auth_fail",
                     {"context": [None, context], "username": [None, username]},
                     reason=f"failed {context}: unknown username")
    else:
        with audit_reason(sess, f"failed {context}: wrong password"):
            user.failed_attempts = (user.failed_attempts or 0) + 1
            if user.failed_attempts >= policy.lockout_threshold and user.locked_at is None:
                user.locked_at = utcnow()
        if user.locked_at is not None and user.failed_attempts == policy.lockout_threshold:
            record_event(sess, "user_account", str(user.id), "lockout",
                         {"failed_attempts": [None, user.failed_attempts]},
                         reason=f"account locked after {policy.lockout_threshold} failed attempts")
    sess.commit()


def register_success(sess: Session, user: User) -> None:
    if user.failed_attempts:
        with audit_reason(sess, "successful authentication resets the failure count"):
            user.failed_attempts = 0


def authenticate(sess: Session, username: str, password: str, *, context: str = "login") -> User:
    """Check both components of the credential; failures are counted, audited and committed."""
    from app.errors import SignatureRefused

    username = (username or "").strip().lower()
    user = sess.execute(select(User).options(joinedload(User.roles)).where(User.username == username)
                        ).unique().scalar_one_or_none()
    if user is not None and user.is_locked:
        raise SignatureRefused("This account is locked after repeated failed attempts. An administrator must unlock it.")
    if user is not None and not user.active:
        register_failed_attempt(sess, None, username, context)
        raise SignatureRefused("The user ID or password is not correct.")
    if user is None or not password_matches(user.password_hash, password or ""):
        register_failed_attempt(sess, user, username, context)
        if user is not None and sess.get(User, user.id).is_locked:
            raise SignatureRefused("The password was wrong too many times: this account is now locked. "
                                   "An administrator must unlock it.")
        raise SignatureRefused("The user ID or password is not correct.")
    with acting_as(Actor(user.id, user.username)):  # the person who just proved who they are
        register_success(sess, user)
    return user


def get_user(sess: Session, user_id: int) -> User:
    user = sess.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def list_users(sess: Session) -> list[User]:
    return list(sess.execute(select(User).order_by(User.username)).scalars())
