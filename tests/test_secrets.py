"""secrets.py: secret names, credentials inside values, and redaction of encoded copies."""

from __future__ import annotations

import base64
import urllib.parse
from pathlib import Path

import pytest
from conftest import RepoFactory

from pytest_corrsource.sandbox.process import scrubbed_environment
from pytest_corrsource.secrets import (
    embedded_credential,
    encoded_forms,
    looks_secret,
    redact,
    without_credentials,
)

SECRET = "s3cr3t-Canary-42xyz"
ENV = {"MY_SERVICE_API_TOKEN": SECRET, "HOME": "/home/someone-long"}


@pytest.mark.parametrize(
    "name",
    [
        "CI_JOB_JWT", "GH_PAT", "MY_SERVICE_API_TOKEN", "GITHUB_TOKEN", "githubToken",
        "AWS_SECRET_ACCESS_KEY", "APIKEY", "NPM_AUTHTOKEN", "DB_PASSWORD2", "PGPASSWD",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS", "HTTP_AUTH",
        "hf_token", "SSH_PRIVATE_KEY", "x-api-key", "SECRETS_FILE", "ACCESSTOKEN",
    ],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name",
    ["PATH", "KEYBOARD_LAYOUT", "AUTHOR_NAME", "PATCH_LEVEL", "LANG", "PIP_INDEX_URL",
     "MONKEY", "TZ", "SOURCE_DATE_EPOCH", "HOME", "PATHEXT", "LC_ALL",
     "TOKENIZERS_PARALLELISM", "HOTKEY_MODE", "XAUTHORITY", "PIP_KEYRING_PROVIDER"],
)  # fmt: skip
def test_names_that_are_not_secret(name: str) -> None:
    assert not looks_secret(name)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("https://user:glpat-xyz@gitlab.example/simple", "user info in a URL"),
        ("https://ghp_token@github.com/org/repo", "user info in a URL"),
        ("https://a.example/simple https://u:p@b.example/simple", "user info in a URL"),
        ("https://gitlab.example/api/v4/simple?private_token=abc123", "`private_token`"),
        ("https://h.example/x?access_token=abc123&page=2", "`access_token`"),
        ("https://blob.example/w?sv=2020&sig=abcDEF%3D", "`sig`"),
        ("https://h.example/x?key=abc123", "`key`"),
        ("user:pass@proxy.internal:3128", "without a scheme"),
        ("localhost, alice:hunter22@proxy:3128", "without a scheme"),
    ],
)
def test_embedded_credentials(value: str, kind: str) -> None:
    found = embedded_credential(value)
    assert found is not None
    assert kind in found


@pytest.mark.parametrize(
    "value",
    ["https://pypi.org/simple", "http://proxy.internal:3128", "localhost,127.0.0.1,.corp",
     "https://h.example/x?page=2&format=json", "/etc/ssl/certs/ca.pem", "en_US.UTF-8"],
)  # fmt: skip
def test_values_without_credentials(value: str) -> None:
    assert embedded_credential(value) is None


def test_scrubbed_environment_drops_smuggled_credentials_with_a_warning(tmp_path: Path) -> None:
    base = {
        "PIP_EXTRA_INDEX_URL": "https://user:tok3n-value@pkgs.example/simple",
        "PIP_INDEX_URL": "https://pkgs.example/simple?private_token=tok3n-value",
        "HTTPS_PROXY": "user:pass-word@proxy:3128",
        "UV_INDEX_URL": "https://pypi.org/simple",
        "LC_AUTH_TOKEN": "tok3n-value",  # allowed by prefix, but its name is a secret
        "LANG": "C.UTF-8",
    }
    warnings: list[str] = []
    env = scrubbed_environment(
        path_prefix=[], home=tmp_path, tmpdir=tmp_path, base=base, warnings=warnings
    )
    assert env["UV_INDEX_URL"] == "https://pypi.org/simple"
    assert env["LANG"] == "C.UTF-8"
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "HTTPS_PROXY", "LC_AUTH_TOKEN"):
        assert name not in env
        assert any(w.startswith(f"{name} was not passed to the step") for w in warnings)
    assert not any("tok3n" in w or "pass-word" in w for w in warnings)  # never the value
    assert "tok3n-value" not in "\n".join(env.values())


def test_without_credentials_keeps_clean_values() -> None:
    passed, warnings = without_credentials({"TZ": "UTC", "HTTP_PROXY": "http://proxy:3128"})
    assert passed == {"TZ": "UTC", "HTTP_PROXY": "http://proxy:3128"}
    assert warnings == []


def _b64(data: bytes, urlsafe: bool = False, pad: bool = True) -> str:
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    return text if pad else text.rstrip("=")


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        SECRET[::-1],
        SECRET.encode().hex(),
        SECRET.encode().hex().upper(),
        urllib.parse.quote(SECRET, safe=""),
        _b64(SECRET.encode()),
        _b64(SECRET.encode(), pad=False),
        _b64(SECRET.encode(), urlsafe=True),
        _b64(SECRET.encode(), urlsafe=True, pad=False),
    ],
)
def test_redact_hides_every_encoded_form(form: str) -> None:
    out = redact(f"leak: {form} end", ENV)
    assert "***" in out
    assert form not in out


@pytest.mark.parametrize("lead", [b"", b"a", b"ab", b"abc", b"Authorization: Bearer "])
@pytest.mark.parametrize("urlsafe", [False, True])
def test_redact_base64_embedded_at_every_alignment(lead: bytes, urlsafe: bool) -> None:
    # The attacker encodes the secret inside a longer message, at an arbitrary offset.
    encoded = _b64(lead + SECRET.encode() + b" trailing words", urlsafe=urlsafe)
    out = redact(encoded, ENV)
    assert "***" in out
    # What is left cannot be decoded back to the secret.
    survivors = out.split("***")
    assert all(SECRET[:4] not in _try_decode(s) for s in survivors)


def _try_decode(text: str) -> str:
    try:
        return base64.b64decode(text + "===", altchars=b"-_").decode("latin-1")
    except ValueError:
        return ""


def test_redact_leaves_short_values_and_ordinary_text() -> None:
    env = {"SHORT_TOKEN": "abc", "GPG_KEY": "default", "PATH": "/usr/bin:/bin"}
    text = "abc is short; default is a word; /usr/bin:/bin is not a secret"
    assert redact(text, env) == text
    assert all(len(form) >= 8 for form in encoded_forms("abcdefgh"))
    # The last base64 character also encodes what follows the secret (here: padding), so it
    # stays: it carries 2 bits of the secret, not the secret.
    assert redact("abcdefgh YWJjZGVmZ2g=", {"A_TOKEN": "abcdefgh"}) == "*** ***g="


def test_redact_credentials_inside_allowed_values_and_free_text() -> None:
    env = {"PIP_INDEX_URL": "https://pkgs.example/simple?private_token=glpat-1234567"}
    out = redact("fetched ?private_token=glpat-1234567 and Z2xwYXQtMTIzNDU2Nw==", env)
    assert "glpat-1234567" not in out
    assert "Z2xwYXQtMTIzNDU2Nw" not in out
    assert redact("see https://u:pw-123456@h/ and ?token=abcdef&x=1", {}) == (
        "see https://***@h/ and ?token=***&x=1"
    )


@pytest.mark.e2e
def test_cs202_reports_a_variable_kept_from_the_steps(
    make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A credential riding in an allowed variable never reaches a step, and the user is told
    # which variable was kept back (never its value).
    from conftest import RUNNABLE_FILES, RUNNABLE_MANIFEST, PlannedChecks

    token = "glpat-s3cretvalue1234"
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"https://ci:{token}@packages.example.invalid/simple")
    root = make_repo(RUNNABLE_MANIFEST, RUNNABLE_FILES)
    result = PlannedChecks(root)("CS202")
    assert result.outcome == "passed", result.message
    assert any(
        w.startswith("PIP_EXTRA_INDEX_URL was not passed to the step: its value carries")
        for w in result.warnings
    ), result.warnings
    assert token not in " ".join(result.warnings)
