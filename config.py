"""Configuration classes; every setting can be overridden from the environment."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def _instance_dir() -> Path:
    path = Path(os.environ.get("INSTANCE_PATH", BASE_DIR / "instance"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _secret_key() -> str:
    """The session secret: from the environment, else generated once and kept under instance/."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    key_file = _instance_dir() / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


class Config:
    """Production-shaped defaults: embedded SQLite under instance/, or PostgreSQL via DATABASE_URL."""

    TESTING = False
    DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{_instance_dir() / 'nkmes.sqlite3'}"
    SITE_NAME = os.environ.get("SITE_NAME", "NK Cell Therapy Facility")
    SITE_TIMEZONE = os.environ.get("SITE_TIMEZONE", "UTC")
    # How typed numbers are read everywhere ("." or ","); the other character is only a thousands separator.
    DECIMAL_SEPARATOR = os.environ.get("DECIMAL_SEPARATOR", ".")
    # Domain packages loaded by create_app; the core itself imports none of them.
    DOMAIN_PACKAGES = [p for p in os.environ.get("DOMAIN_PACKAGES", "equipment,batches").split(",") if p]

    # Dose model of the site: "whole_bags" (an infusion is whole bags of one lot) or "drawn_volume" (the
    # pharmacy draws the volume holding the dose from bags of one lot), and the oldest weight usable for a dose.
    DOSE_MODEL = os.environ.get("DOSE_MODEL", "whole_bags")
    MAX_WEIGHT_AGE_DAYS = _int("MAX_WEIGHT_AGE_DAYS", 7)
    # Hours after its planned infusion that a reservation not yet issued holds its bags before it expires.
    RESERVATION_HOLD_HOURS = _int("RESERVATION_HOLD_HOURS", 24)

    PASSWORD_MIN_LENGTH = _int("PASSWORD_MIN_LENGTH", 12)
    PASSWORD_HISTORY = _int("PASSWORD_HISTORY", 5)
    LOCKOUT_THRESHOLD = _int("LOCKOUT_THRESHOLD", 5)
    IDLE_TIMEOUT_MINUTES = _int("IDLE_TIMEOUT_MINUTES", 15)
    # Argon2id cost: the memory and passes of OWASP's recommended minimum (19 MiB, 2 passes), in two lanes
    # computed at once: the same work per guess, about 18 ms per check on two idle cores instead of 33 ms.
    # Every login and every e-signature pays it once.
    ARGON2_TIME_COST = _int("ARGON2_TIME_COST", 2)
    ARGON2_MEMORY_COST = _int("ARGON2_MEMORY_COST", 19456)
    ARGON2_PARALLELISM = _int("ARGON2_PARALLELISM", 2)

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = os.environ.get("SESSION_COOKIE_SECURE", "auto")
    MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 1024 * 1024)  # bytes in one request body (413 above)
    WTF_CSRF_TIME_LIMIT = None  # the idle timeout bounds a form's life instead

    # Label stock for the label printers: name -> (width, height) in inches; one label per PDF page.
    LABEL_SIZES = {"4x4": (4.0, 4.0), "4x2": (4.0, 2.0), "2x1": (2.0, 1.0)}
    LABEL_DEFAULT_SIZE = os.environ.get("LABEL_DEFAULT_SIZE", "4x4")

    API_TITLE = "NK MES API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"

    @property
    def SECRET_KEY(self) -> str:  # noqa: N802 - Flask reads it by this name
        return _secret_key()


class TestConfig(Config):
    """Used by the test suite; the database URL is set by the fixtures."""

    TESTING = True
    PASSWORD_MIN_LENGTH = 12
    ARGON2_TIME_COST = 1  # cheap hashing keeps the suite fast; production uses the library defaults
    ARGON2_MEMORY_COST = 1024
    SECRET_KEY = secrets.token_hex(32)
