"""What decides that a value or a file is a secret: the weak-key verdicts `deploy config` and SEC020
give, and the file names push never ships (benchmarks/mutation.py's secretstrength and secretfiles)."""

from __future__ import annotations

import pytest

from deploy.config.secretfiles import NOT_SECRETS, is_secret, is_secret_name, withheld_warning
from deploy.config.secrets import MIN_DISTINCT, MIN_SECRET_LENGTH, key_weakness, secret_weakness

pytestmark = pytest.mark.unit

STRONG = "k3J9vQ2xL8mN4pR7tY1wZ6aB5cD0eF2g"  # 32 bytes, 32 distinct characters


@pytest.mark.parametrize(
    "word",
    ["changeme", "  Secret  ", "DEV", "development", "key", "xxx", "default", "Password", "SUPER-SECRET"],
)
def test_a_placeholder_word_is_weak_whatever_its_case_and_spaces(word: str) -> None:
    assert secret_weakness(word) == "is a well-known placeholder"


def test_a_value_one_byte_short_is_weak_and_says_its_length() -> None:
    value = STRONG[: MIN_SECRET_LENGTH - 1]
    assert secret_weakness(value) == (
        f"has {MIN_SECRET_LENGTH - 1} bytes (at least {MIN_SECRET_LENGTH} random bytes are needed)"
    )
    assert secret_weakness(STRONG[:MIN_SECRET_LENGTH]) is None


def test_the_length_counts_bytes_not_characters() -> None:
    # 16 characters, 33 bytes: enough; without the last (three-byte) one, 30 bytes: not.
    wide = "éàüöñçøåßæœðþłđ€"
    assert len(wide.encode()) == 33  # 15 two-byte + one three-byte (euro sign)
    assert secret_weakness(wide) is None
    assert "has 30 bytes" in str(secret_weakness(wide[:-1]))


def test_surrounding_spaces_do_not_count_towards_the_length() -> None:
    short = STRONG[: MIN_SECRET_LENGTH - 2]
    assert secret_weakness(f"  {short}  ") == (
        f"has {MIN_SECRET_LENGTH - 2} bytes (at least {MIN_SECRET_LENGTH} random bytes are needed)"
    )


def test_too_few_distinct_characters_is_weak_and_says_how_many() -> None:
    few = ("abcdefg" * 10)[:40]
    assert secret_weakness(few) == "has only 7 distinct characters"
    enough = ("abcdefgh" * 10)[:40]
    assert len(set(enough)) == MIN_DISTINCT
    assert secret_weakness(enough) is None


@pytest.mark.parametrize(
    "name", ["SECRET_KEY", "secret_key", "FLASK_SECRET_KEY", "PASSWORD_SALT", "JWT_SIGNING_KEY", "SECRET"]
)
def test_a_signing_key_name_gets_the_value_judged(name: str) -> None:
    assert key_weakness(name, "changeme") == "is a well-known placeholder"
    assert key_weakness(name, STRONG) is None


@pytest.mark.parametrize("name", ["DATABASE_URL", "API_TOKEN", "SECRETARY", "SALTY", "MYSECRETS"])
def test_other_names_are_not_judged(name: str) -> None:
    assert key_weakness(name, "changeme") is None


@pytest.mark.parametrize(
    "name",
    [".env", ".env.production", "prod.env", ".envrc", "server.pem", "tls.key", "id_rsa", "id_ed25519.pub",
     ".netrc", ".pgpass", ".npmrc", ".pypirc", ".git-credentials", ".htpasswd", "credentials.json",
     "client_secret_123.json", "secrets.yaml", "prod.tfvars", "terraform.tfstate", "terraform.tfstate.backup",
     ".ssh", ".aws", ".gnupg", "secrets", "store.p12", "vault.kdbx"],
)
def test_secret_names_are_secret(name: str) -> None:
    assert is_secret_name(name)
    assert is_secret(f"app/{name}")
    assert is_secret(f"{name}/inside/file.txt")


@pytest.mark.parametrize("name", [*NOT_SECRETS, "app.py", "environment.py", "keys.py", "Secrets", ".ENV"])
def test_templates_and_ordinary_files_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)
    assert not is_secret(f"app/{name}")


def test_a_path_is_split_on_slashes_only() -> None:
    assert is_secret("a/b/.env")
    assert not is_secret("a.env.example/b")
    assert not is_secret("notes/env")


def test_the_warning_names_up_to_ten_files_and_counts_the_rest() -> None:
    few = withheld_warning([".env", "tls.key"])
    assert few.startswith("WARNING: 2 secret file(s) tracked by git are NOT shipped: .env, tls.key. ")
    assert "more" not in few
    many = [f"s{i}.pem" for i in range(12)]
    text = withheld_warning(many)
    assert "12 secret file(s)" in text
    assert ", ".join(many[:10]) + " and 2 more." in text
    assert "s10.pem" not in text
    assert withheld_warning(many[:11]).endswith(", s9.pem and 1 more. " + REST)
    exactly_ten = withheld_warning(many[:10])
    assert "more" not in exactly_ten and "s9.pem" in exactly_ten
    assert few == "WARNING: 2 secret file(s) tracked by git are NOT shipped: .env, tls.key. " + REST


REST = (
    "They are in the repository's history: untrack them (git rm --cached FILE; add them to .gitignore) "
    "and rotate the secrets they hold"
)
