"""Keys pasted with stray whitespace, keys an HTTP header cannot carry, keys encrypted under
an encryption key this process no longer has: none of them leaks, none of them is a 500."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet

from providers.models import Credential
from providers.pipeline import poll_provider
from resilience import secrets
from tests.providers.conftest import serve_ionet

pytestmark = pytest.mark.django_db
KEY = "io-test-key-5678"
BROKEN = "io-Secret9f8e7d6c5b4a\nx"  # a key with a line break inside: no header can carry it


def pages_that_show_errors(client) -> str:
    return "\n".join(
        client.get(url).content.decode("unicode_escape")
        for url in (
            "/health/",
            "/health/ionet/",
            "/api/v1/provider-health/providers/ionet/health",
            "/api/v1/provider-health/metrics/summary",
            "/admin/providers/pollrun/",
        )
    )


def test_it_strips_a_newline_pasted_after_an_environment_key(ionet, settings):
    _, server = ionet
    settings.IONET_API_KEY = KEY + "\n"
    serve_ionet(server)  # matches the header x-api-key: io-test-key-5678 exactly
    run = poll_provider("ionet")
    assert run.outcome == "ok", run.error_message


def test_it_never_puts_a_header_value_in_an_error(ionet, settings, admin_client, caplog):
    _, server = ionet
    settings.IONET_API_KEY = BROKEN
    with caplog.at_level(logging.DEBUG):
        run = poll_provider("ionet")
    assert run.outcome == "failed"
    assert "header value is not allowed" in run.error_message
    seen = "\n".join([run.error_message, caplog.text, pages_that_show_errors(admin_client)])
    for part in ("Secret9f8e7d6c5b4a", "Illegal header value"):
        assert part not in seen
    assert server.log == []  # nothing went out


@pytest.mark.parametrize(
    "text",
    [
        "Illegal header value b'io-Secret9f8e7d6c5b4a\\n'",  # bytes repr, as h11 says it
        "value 'io-Secret9f8e7d6c5b4a\\n' refused",  # str repr
        '{"key": "io-Secret9f8e7d6c5b4a\\n"}',  # JSON
        "GET /?key=io-Secret9f8e7d6c5b4a%0A",  # URL-encoded
        "io-Secret9f8e7d6c5b4a",  # stripped
    ],
)
def test_it_scrubs_a_remembered_key_in_every_spelling(text):
    secrets.remember("io-Secret9f8e7d6c5b4a\n")
    assert "Secret9f8e7d6c5b4a" not in secrets.scrub(text)


def test_the_admin_form_strips_a_pasted_key(registry, admin_client):
    groq = registry["groq"]
    response = admin_client.post(
        "/admin/providers/credential/add/", {"provider": groq.pk, "api_key": f"  {KEY}\r\n"}
    )
    assert response.status_code == 302
    assert Credential.objects.get().key() == KEY


def test_the_admin_form_refuses_a_key_no_header_can_carry(registry, admin_client):
    response = admin_client.post(
        "/admin/providers/credential/add/", {"provider": registry["groq"].pk, "api_key": BROKEN}
    )
    assert response.status_code == 200 and not Credential.objects.exists()
    page = response.content.decode()
    assert "cannot carry" in page and "Secret9f8e7d6c5b4a" not in page


def test_an_undecryptable_key_is_shown_as_such_and_fails_a_poll_clearly(
    ionet, settings, admin_client
):
    provider, server = ionet
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.GPUBROKER_ENCRYPTION_KEYS = [old]
    credential = Credential(provider=provider)
    credential.set_key(KEY)
    credential.save()
    settings.GPUBROKER_ENCRYPTION_KEYS = [new]  # rotated elsewhere; this process lacks `old`

    listing = admin_client.get("/admin/providers/provider/")
    assert listing.status_code == 200
    assert "…5678 admin-managed, cannot be decrypted" in listing.content.decode()
    assert admin_client.get(f"/admin/providers/provider/{provider.pk}/change/").status_code == 200
    assert admin_client.get("/admin/providers/credential/").status_code == 200

    run = poll_provider("ionet")
    assert run.outcome == "failed" and run.error_class == "UndecryptableKey"
    assert "key cannot be decrypted: check GPUBROKER_ENCRYPTION_KEYS" in run.error_message
    assert server.log == []
