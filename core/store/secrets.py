"""Client secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) from the `cryptography` package.

The key comes from HALO_CONSOLE_SECRET_KEY, or for the embedded SQLite default from a key file created once beside
the database with mode 0600. A wrong or missing key is a clear `SecretKeyError`, never garbage.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from core.errors import SecretKeyError
from core.settings import PROJECT_ROOT, Settings

KEY_FILE_NAME = "secret.key"


def key_file_path(settings: Settings) -> Path:
    db_path = settings.sqlite_path
    folder = db_path.parent if db_path else PROJECT_ROOT / "data"
    return folder / KEY_FILE_NAME


def _load_or_create_key_file(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
    finally:
        os.close(fd)
    return key


class SecretBox:
    """Encrypts and decrypts client secrets with one key."""

    def __init__(self, key: bytes | str) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise SecretKeyError(
                "The encryption key for stored client secrets is not a valid key. Set HALO_CONSOLE_SECRET_KEY to the "
                "key this database was created with (a 44-character url-safe base64 string)."
            ) from None

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "Stored client secrets cannot be decrypted with the configured key. Restore the key this database "
                "was created with (HALO_CONSOLE_SECRET_KEY or the key file beside the database), or reconnect the "
                "partner with its client secret."
            ) from None


def secret_box(settings: Settings) -> SecretBox:
    """The box for these settings: the environment key if set, else the key file beside the SQLite database."""
    if settings.secret_key:
        return SecretBox(settings.secret_key)
    if settings.sqlite_path is None and not settings.database_url.startswith("sqlite"):
        raise SecretKeyError(
            "HALO_CONSOLE_SECRET_KEY is not set. A shared database needs the key in the environment of every "
            "console and worker; generate one with `python -m core keygen`."
        )
    return SecretBox(_load_or_create_key_file(key_file_path(settings)))
