import os
import stat
from dataclasses import replace

import pytest
from cryptography.fernet import Fernet

from core.errors import SecretKeyError
from core.store.secrets import SecretBox, key_file_path, secret_box


def test_round_trip_and_ciphertext_never_holds_the_plaintext():
    box = SecretBox(Fernet.generate_key())
    token = box.encrypt("hunter2-very-secret")
    assert "hunter2" not in token
    assert box.decrypt(token) == "hunter2-very-secret"


def test_a_wrong_key_is_a_clear_error_not_garbage():
    token = SecretBox(Fernet.generate_key()).encrypt("abc")
    with pytest.raises(SecretKeyError, match="cannot be decrypted with the configured key"):
        SecretBox(Fernet.generate_key()).decrypt(token)


@pytest.mark.parametrize("key", ["", "short", "x" * 44])
def test_an_invalid_key_is_a_clear_error(key):
    with pytest.raises(SecretKeyError, match="not a valid key"):
        SecretBox(key)


def test_embedded_default_creates_a_private_key_file_once(settings, tmp_path):
    # the embedded default is a SQLite file, whichever database the suite runs on
    local = replace(settings, secret_key=None, database_url=f"sqlite:///{tmp_path / 'embedded' / 'console.db'}")
    first = secret_box(local).encrypt("value")
    path = key_file_path(local)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert secret_box(local).decrypt(first) == "value"


def test_a_shared_database_without_a_key_is_refused(settings):
    with pytest.raises(SecretKeyError, match="HALO_CONSOLE_SECRET_KEY is not set"):
        secret_box(replace(settings, secret_key=None, database_url="postgresql+psycopg://db/console"))
