"""What every page shares: the favicon (no 404 on each page load)."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders


@pytest.mark.django_db
def test_every_page_names_a_favicon_that_exists(client):
    assert '<link rel="icon" href="/static/favicon.svg"' in client.get("/status/").content.decode()
    assert finders.find("favicon.svg")


def test_the_browsers_default_favicon_path_leads_to_it(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/favicon.svg"
