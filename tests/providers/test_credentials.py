from __future__ import annotations

import logging
import time

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from werkzeug import Response

from providers import crypto
from providers.models import Credential
from providers.pipeline import poll_provider

pytestmark = pytest.mark.django_db
SECRET = "gsk_SuperSecretGroqKey9876543210wxyz"


def store_key(provider, raw=SECRET) -> Credential:
    credential = Credential(provider=provider)
    credential.set_key(raw)
    credential.save()
    return credential


def every_row_as_text() -> str:
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        dumps = []
        for table in tables:
            cursor.execute(f'SELECT t::text FROM "{table}" t')
            dumps.extend(row[0] for row in cursor.fetchall())
    return "\n".join(dumps)


def test_a_stored_key_is_encrypted_and_decrypts(registry):
    credential = store_key(registry["groq"])
    assert credential.fingerprint == "…wxyz"
    assert SECRET not in credential.encrypted_key
    assert Credential.objects.get().key() == SECRET


def test_an_admin_key_takes_precedence_over_the_environment(registry, settings):
    settings.GROQ_API_KEY = "gsk_fromtheenvironment0000"
    groq = registry["groq"]
    assert groq.key_source == "environment"
    store_key(groq)
    groq.refresh_from_db()
    groq = type(groq).objects.get(pk=groq.pk)
    assert groq.key_source == "admin"
    assert groq.api_key() == SECRET


def test_rotation_re_encrypts_under_the_newest_key(registry, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.GPUBROKER_ENCRYPTION_KEYS = [old]
    store_key(registry["groq"])
    settings.GPUBROKER_ENCRYPTION_KEYS = [new, old]
    call_command("rotate_credentials")
    settings.GPUBROKER_ENCRYPTION_KEYS = [new]  # the old key can now be dropped
    assert Credential.objects.get().key() == SECRET
    settings.GPUBROKER_ENCRYPTION_KEYS = [old]
    with pytest.raises(crypto.InvalidToken):
        Credential.objects.get().key()


def test_a_key_appears_nowhere_a_person_or_log_could_see_it(registry, serve, admin_client, caplog):
    groq = registry["groq"]
    server = serve(groq)
    store_key(groq)
    # A provider that echoes the key back in its error body, as some do.
    server.expect_request("/openai/v1/models").respond_with_json(
        {"error": {"message": f"Invalid API Key: {SECRET}", "code": "invalid_api_key"}},
        status=401,
    )
    with caplog.at_level(logging.DEBUG):
        run = poll_provider("groq")
    assert run.outcome == "failed" and run.error_class == "InvalidKey"

    pages = [
        admin_client.get("/admin/providers/credential/").content.decode(),
        admin_client.get(
            f"/admin/providers/credential/{Credential.objects.get().pk}/change/"
        ).content.decode(),
        admin_client.get("/admin/providers/provider/").content.decode(),
        admin_client.get(f"/admin/providers/provider/{groq.pk}/change/").content.decode(),
        admin_client.get("/admin/providers/pollrun/").content.decode(),
    ]
    assert "…wxyz" in pages[0]  # the fingerprint is what admins see
    for where, text in [
        ("database", every_row_as_text()),
        ("admin pages", "\n".join(pages)),
        ("logs", caplog.text),
        ("poll run", run.error_message),
    ]:
        assert SECRET not in text, f"key leaked into {where}"
        assert SECRET[4:20] not in text, f"part of the key leaked into {where}"


def test_the_admin_form_stores_a_write_only_key(registry, admin_client):
    groq = registry["groq"]
    response = admin_client.post(
        "/admin/providers/credential/add/", {"provider": groq.pk, "api_key": SECRET}
    )
    assert response.status_code == 302
    assert Credential.objects.get(provider=groq).key() == SECRET
    page = admin_client.get(f"/admin/providers/credential/{Credential.objects.get().pk}/change/")
    assert SECRET not in page.content.decode()


def test_the_test_connection_action_reports_the_mapped_result(registry, serve, admin_client):
    groq = registry["groq"]
    server = serve(groq)
    store_key(groq)
    server.expect_request("/openai/v1/models").respond_with_json(
        {"error": {"message": "Invalid API Key", "code": "invalid_api_key"}}, status=401
    )
    response = admin_client.post(
        "/admin/providers/provider/",
        {"action": "test_connection", "_selected_action": [groq.pk]},
        follow=True,
    )
    assert "Test connection to Groq: invalid key." in response.content.decode()


def test_test_connection_to_a_hanging_provider_answers_within_its_bound(
    registry, serve, admin_client, settings
):
    settings.PROVIDER_TEST_CONNECTION_SECONDS = 1
    settings.PROVIDER_MAX_RETRIES = 3  # not for a button: one attempt
    groq = registry["groq"]
    server = serve(groq)
    store_key(groq)
    server.expect_request("/openai/v1/models").respond_with_handler(
        lambda request: time.sleep(3) or Response("{}")
    )
    started = time.monotonic()
    response = admin_client.post(
        "/admin/providers/provider/",
        {"action": "test_connection", "_selected_action": [groq.pk]},
        follow=True,
    )
    assert time.monotonic() - started < 3
    assert "Test connection to Groq: unreachable. groq: timed out after 1." in (
        response.content.decode()
    )
    assert len(server.log) <= 1


def test_the_provider_admin_says_where_the_key_comes_from(registry, admin_client, settings):
    settings.DEEPINFRA_API_KEY = "di-env-key-abcd"
    page = admin_client.get("/admin/providers/provider/").content.decode()
    assert "…abcd from environment (DEEPINFRA_API_KEY)" in page
    assert "di-env-key-abcd" not in page
