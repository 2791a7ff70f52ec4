"""Contract test: schemathesis reads the generated OpenAPI schema from a live test server and
throws generated requests at every operation. No answer may be a 5xx, and every answer must
match what the schema promises (status, content type, body).

Driven with hypothesis directly: schemathesis's pytest plugin does not run under pytest 9.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

EXAMPLES = 60


def test_the_api_never_answers_5xx_and_keeps_to_its_schema(
    transactional_db, live_server, world, settings
):
    settings.API_RATE_LIMIT = 10**9  # hypothesis sends hundreds of requests from one address
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} == {
        "/api/v1/pricing",
        "/api/v1/models",
        "/api/v1/offers/{offer_id}",
        "/api/v1/gpus",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def exercise(case):
            case.call_and_validate()

        exercise()
