"""The broker's request path: authenticate, route, call the first candidate that answers,
pass its answer on (a stream chunk by chunk), account for it.

Before the first byte reaches the client, a connection error, timeout, 429, 5xx, our own
breaker or limiter refusing, or the provider rejecting *our* key (401/403) or not knowing the
model (404) moves on to the next candidate. Any other 4xx is the request's fault and goes back
to the client as it came. After the first byte nothing is retried: an error becomes an event in
the stream. Everything answered is in OpenAI's error shape, never a 500, never a provider key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from broker import accounting, database, leases, memo, routing
from broker.accounting import Call
from broker.memo import Memo
from broker.models import ApiKey, Outcome
from broker.routing import CHAT, RouteError
from resilience import aio
from resilience.errors import BadPayload, ProviderError
from resilience.secrets import scrub

logger = logging.getLogger(__name__)

# Provider answers that send a request on to the next candidate: the provider failed or
# refused *us* (our breaker, our limiter, our key); the request itself may be fine.
FALL_THROUGH = frozenset(
    {
        "server_error", "timeout", "connection", "rate_limited", "circuit_open",
        "rate_limit_exceeded", "invalid_key", "forbidden", "not_found",
    }
)  # fmt: skip
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}
DONE = b"data: [DONE]\n\n"
KEYS = Memo()


def error_response(
    status: int,
    message: str,
    code: str,
    param: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> JsonResponse:
    """OpenAI's error shape; `metadata` (as OpenRouter's) says what was tried and skipped."""
    error: dict[str, Any] = {
        "message": scrub(message),
        "type": ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error"),
        "param": param,
        "code": code,
    }
    if metadata:
        error["metadata"] = metadata
    return JsonResponse({"error": error}, status=status)


def parse_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RouteError(400, f"The body is not valid JSON: {exc}", "invalid_json") from exc
    if not isinstance(body, dict):
        raise RouteError(400, "The body must be a JSON object.", "invalid_json")
    return body


def bearer(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def authenticate(request: HttpRequest) -> ApiKey:
    raw = bearer(request)
    if not raw:
        raise RouteError(401, "Missing API key: send `Authorization: Bearer gpb_…`.", "missing_key")
    key = KEYS.get(raw, lambda: ApiKey.find(raw))
    if key is None:
        raise RouteError(401, "Invalid API key.", "invalid_api_key")
    if key.revoked_at is not None:
        raise RouteError(401, "This API key has been revoked.", "revoked_key")
    if not key.usable:
        raise RouteError(401, "This API key has expired.", "expired_key")
    return key


def over_budget(key: ApiKey, hold: Decimal | None = None) -> RouteError:
    spent = key.spent_this_month()
    if hold is None or spent >= key.monthly_budget_usd:
        message = (
            f"Monthly budget of ${key.monthly_budget_usd} spent for this key (${spent:.6f} so far)."
        )
    else:
        message = (
            f"This request could cost up to ${hold:.6f}: more than this key's monthly budget of "
            f"${key.monthly_budget_usd} has left beside ${spent:.6f} spent and what requests in "
            "flight hold. Retry when they end, or ask for fewer `max_tokens`."
        )
    return RouteError(402, message, "insufficient_quota")


def prepare(call: Call, body: dict[str, Any]) -> None:
    """Route the request and hold its expected cost of the key's budget (sync: the ORM)."""
    if call.key.over_budget():
        raise over_budget(call.key)
    plan = call.plan = routing.plan(call.key, body, call.endpoint)
    call.model = plan.model
    if not plan.candidates:
        raise no_provider(call)
    budgeted = call.key.monthly_budget_usd is not None and call.endpoint == CHAT
    if budgeted and routing.requested_output(body) is None:
        # An answer's length is only bounded when the request says so: a key with a budget
        # gets one (BROKER_BUDGET_MAX_TOKENS), so what it holds is what it can spend.
        plan.output_cap = settings.BROKER_BUDGET_MAX_TOKENS
    plan.estimate = routing.most_cost(plan, body, plan.output_cap)
    call.lease = leases.hold(call.key, plan.estimate)  # usually: no round trip
    if call.lease is not None:
        return
    if call.key.monthly_budget_usd is not None and memo.only_in_memory():
        raise memo.Missing(call.key.pk)  # a hold of its own is a round trip
    call.reserved = call.key.reserve(plan.estimate)
    if not call.reserved:
        # Requests that ended here still held their estimates until recorded, and this
        # process's lease holds a share: written and given up now, what they did not spend is
        # free again, so this one is not refused for their holds.
        leases.end(call.key)
        if accounting.RECORDER.flush():
            call.reserved = call.key.reserve(plan.estimate)
    if not call.reserved:
        call.key.refresh_from_db()
        raise over_budget(call.key, plan.estimate)


def no_provider(call: Call) -> RouteError:
    plan = call.plan
    reasons = [f"{s['provider']} (offer {s['offer']}): {s['reason']}" for s in plan.skipped]
    reasons += [f"{a['provider']} (offer {a['offer']}): {a['message']}" for a in call.attempts]
    message = f"No provider could serve `{plan.model}`" + (
        ": " + "; ".join(reasons) if reasons else "."
    )
    return RouteError(503, message, "no_healthy_provider")


async def handle(request: HttpRequest, endpoint: str, *, annotate: bool = False) -> HttpResponse:
    """The whole request; `annotate` adds a `gpubroker` object to a JSON answer
    (`/api/v1/inference`)."""
    try:
        body = parse_body(request)
    except RouteError as exc:
        return error_response(exc.status, str(exc), exc.code, exc.param)
    try:
        try:  # on the event loop, when everything it needs is in this process's memory
            with memo.in_memory():
                call, refused = start(request, body, endpoint, annotate)
        except memo.Missing:  # else in a database thread
            call, refused = await database.run(start, request, body, endpoint, annotate)
    except DatabaseError:
        logger.exception("the broker's database failed a request")
        return error_response(503, "The broker could not reach its database.", "database_error")
    if refused is not None:
        return refused
    return await dispatch(call, body, annotate)


def start(
    request: HttpRequest, body: dict[str, Any], endpoint: str, annotate: bool
) -> tuple[Call | None, JsonResponse | None]:
    """Everything before the first call: authenticate and route (remembered for a second),
    hold the budget (from the process's lease), admit the first candidate (the breaker and
    the token bucket, usually read in-process). Usually all in memory, on the event loop;
    `memo.in_memory()` raises memo.Missing, before anything is held, where it is not, and
    it is done again in one hop to a database thread (each hop between the event loop and a
    thread costs; under load, waiting for the thread and for the loop's turn after it was
    most of the broker's tail)."""
    call = None
    try:
        key = authenticate(request)
        call = Call(key=key, endpoint=endpoint, model=str(body.get("model") or ""))
        call.stream = endpoint == CHAT and body.get("stream") is True and not annotate
        prepare(call, body)
    except RouteError as exc:
        return call, refusal(call, exc)
    policy = call.plan.candidates[0].policy
    call.admitted = aio.admit_in_process(policy)  # None: the shared store must be asked
    if call.admitted is None and not memo.only_in_memory():  # asked here, in this thread
        try:  # (on the event loop, open_stream asks it in a thread)
            call.admitted = aio.admit(policy)
        except ProviderError as exc:  # its breaker or our limiter said no: dispatch moves on
            call.admitted = exc
    return call, None


def refusal(call: Call | None, exc: RouteError) -> JsonResponse:
    if call is not None:  # an authenticated request is recorded, refused or not
        call.status, call.error = exc.status, str(exc)
        call.outcome = Outcome.NO_PROVIDER if exc.status == 503 else Outcome.REFUSED
        accounting.finish(call)
    metadata = None
    if call is not None and call.plan is not None and exc.status == 503:
        metadata = {"skipped": call.plan.skipped, "attempts": call.attempts}
    return error_response(exc.status, str(exc), exc.code, exc.param, metadata)


def upstream_payload(call: Call, body: dict[str, Any], model: str) -> dict[str, Any]:
    payload = {k: v for k, v in body.items() if k != "provider"}
    payload["model"] = model  # the provider's own id, with its exact casing
    if call.plan.output_cap:
        payload["max_tokens"] = call.plan.output_cap
    if call.stream:  # ask for the usage chunk, so every stream can be accounted for
        payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    elif "stream" in payload:  # answered whole (/api/v1/inference): never ask for a stream
        payload["stream"] = False
        payload.pop("stream_options", None)
    return payload


async def dispatch(call: Call, body: dict[str, Any], annotate: bool) -> HttpResponse:
    for candidate in call.plan.candidates:
        admitted, call.admitted = call.admitted, None  # only the first was admitted ahead
        try:
            if isinstance(admitted, ProviderError):
                raise admitted
            response = await aio.open_stream(
                candidate.policy,
                "POST",
                candidate.path,
                admitted=admitted,
                json=upstream_payload(call, body, candidate.upstream_id),
                headers={"Authorization": f"Bearer {candidate.api_key}"},
            )
        except ProviderError as exc:
            call.tried(candidate, exc.code, str(exc))
            if exc.code in FALL_THROUGH:
                continue
            return await upstream_error(call, exc)
        call.served = candidate
        call.ttfb = time.monotonic() - call.started
        if call.stream:
            wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return streaming(call, response, wants_usage)
        return await whole(call, response, annotate)
    return refusal(call, no_provider(call))


async def upstream_error(call: Call, exc: ProviderError) -> JsonResponse:
    """A provider's 4xx about the request itself: the client gets it, with its status."""
    call.status, call.error, call.outcome = exc.status or 400, str(exc), Outcome.UPSTREAM_ERROR
    accounting.finish(call)
    return error_response(call.status, str(exc), "upstream_error")


def usd_text(cost: Decimal) -> str:
    return f"{cost:.9f}".rstrip("0").rstrip(".") or "0"


def cost_comment(cost: Decimal) -> bytes:
    return f": x-gpubroker-cost-usd {usd_text(cost)}\n\n".encode()


def served_headers(call: Call, cost: Decimal | None = None) -> dict[str, str]:
    headers = {
        "x-gpubroker-provider": call.served.provider,
        "x-gpubroker-offer": str(call.served.offer_id),
        "x-gpubroker-attempts": str(len(call.attempts) + 1),
    }
    if call.plan.output_cap:  # the broker bounded the answer for the key's budget
        headers["x-gpubroker-max-tokens"] = str(call.plan.output_cap)
    if cost is not None:
        headers["x-gpubroker-cost-usd"] = usd_text(cost)
    return headers


async def whole(call: Call, response: httpx.Response, annotate: bool) -> HttpResponse:
    try:
        content = await aio.read_body(call.served.provider, response)
    except (*aio.READ_ERRORS, BadPayload) as exc:
        call.status, call.outcome, call.error = 502, Outcome.STREAM_ERROR, scrub(str(exc))
        accounting.finish(call)
        why = str(exc) if isinstance(exc, BadPayload) else f"{call.served.provider}: answer cut off"
        return error_response(502, why, "upstream_error")
    finally:
        await response.aclose()
    try:
        answer = json.loads(content)
    except ValueError:
        answer = None
    call.usage = answer.get("usage") if isinstance(answer, dict) else None
    cost, source = call.cost()
    accounting.finish(call)  # recorded by the writer, after the answer has gone
    headers = served_headers(call, cost)
    if annotate and isinstance(answer, dict):
        answer["gpubroker"] = {
            "provider": call.served.provider,
            "offer": call.served.offer_id,
            "upstream_model": call.served.upstream_id,
            "cost_usd": float(cost) if cost is not None else None,
            "cost_source": source,
            "attempts": call.attempts,
        }
        return JsonResponse(answer, headers=headers)
    return HttpResponse(content, content_type="application/json", headers=headers)


def streaming(call: Call, response: httpx.Response, wants_usage: bool) -> StreamingHttpResponse:
    answer = StreamingHttpResponse(
        relay(call, response, wants_usage),
        content_type="text/event-stream",
        headers=served_headers(call),
    )
    answer["Cache-Control"] = "no-cache"
    answer["X-Accel-Buffering"] = "no"  # tell a proxy in front not to buffer either
    return answer


async def relay(call: Call, response: httpx.Response, wants_usage: bool) -> AsyncIterator[bytes]:
    """The provider's server-sent events, each passed on as soon as it is complete (nothing
    waits for the next one). The usage event we asked for is read, and dropped when the client
    did not ask for it; a stream the provider ends without `[DONE]` still gets one."""
    events = Events(settings.PROVIDER_MAX_RESPONSE_BYTES)
    try:
        try:
            async for chunk in response.aiter_raw():
                # The events completed by this chunk go on together: one write, not one each.
                passed = b"".join(
                    filter(None, (see(call, e, wants_usage) for e in events.feed(chunk)))
                )
                if passed:
                    yield passed
                if events.runaway:  # an event that never ends is not held in memory
                    raise RunawayEvent
            for event in events.rest():
                passed = see(call, event, wants_usage)
                if passed:
                    yield passed
        except aio.READ_ERRORS as exc:  # after the first byte: an event, not a fallback
            yield cut_off(call, type(exc).__name__)
        except RunawayEvent:
            yield cut_off(call, "one event larger than PROVIDER_MAX_RESPONSE_BYTES")
        if not events.done:  # OpenAI-compatible streams end with [DONE]; this one stopped
            if call.outcome == Outcome.OK:
                yield cut_off(call, "ended before [DONE]")
            yield DONE
    except BaseException:  # the client went away (cancelled) or a bug: record, then go on
        # A client that hangs up once it has read `[DONE]` (the SDKs do) got everything.
        if call.outcome == Outcome.OK and not events.done:
            call.outcome, call.status = Outcome.CLIENT_GONE, 499
        raise
    finally:
        accounting.finish(call)  # no await before it: a hung-up client's cancel cannot lose it
        await response.aclose()


def see(call: Call, event: bytes, wants_usage: bool) -> bytes | None:
    """Read one SSE event on its way through; returns what to pass on (None: drop it).
    Before `[DONE]` goes a comment line with the cost (clients ignore comments; headers were
    sent before the usage was known): `: x-gpubroker-cost-usd 0.00000268`."""
    data = event.strip()
    if data == b"data: [DONE]":
        cost, _ = call.cost()
        return cost_comment(cost) + event if cost is not None else event
    if b'"usage"' in data and data.startswith(b"data:"):
        try:
            chunk = json.loads(data[5:])
        except ValueError:
            return event
        usage = chunk.get("usage") if isinstance(chunk, dict) else None
        if usage:
            call.usage = usage
            if not wants_usage and not chunk.get("choices"):
                return None
    return event


def cut_off(call: Call, why: str) -> bytes:
    """The stream broke after the first byte: recorded, and told to the client as an event
    in OpenAI's error shape (the SDKs raise it)."""
    call.outcome, call.status = Outcome.STREAM_ERROR, 502
    call.error = scrub(f"{call.served.provider}: stream cut off ({why})")
    error = {"error": {"message": call.error, "type": "api_error", "code": "stream_error"}}
    return b"data: " + json.dumps(error).encode() + b"\n\n"


class RunawayEvent(Exception):
    """A provider's stream sent more than PROVIDER_MAX_RESPONSE_BYTES without ending an event."""


class Events:
    """Splits a byte stream into complete SSE events (each ending in a blank line); `runaway`
    once an event has grown past `limit` bytes without ending."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = b""
        self.done = False

    def feed(self, chunk: bytes) -> list[bytes]:
        self.buffer += chunk.replace(b"\r\n", b"\n")
        *complete, self.buffer = self.buffer.split(b"\n\n")
        events = [e + b"\n\n" for e in complete if e.strip()]
        self.done = self.done or any(e.strip() == b"data: [DONE]" for e in events)
        return events

    @property
    def runaway(self) -> bool:
        return len(self.buffer) > self.limit

    def rest(self) -> list[bytes]:
        rest, self.buffer = self.buffer, b""
        if not rest.strip():
            return []
        self.done = self.done or rest.strip() == b"data: [DONE]"
        return [rest.rstrip(b"\n") + b"\n\n"]
