"""GET /metrics (Prometheus text) and GET /api/openapi.json (generated)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from cyberhub.platform import metrics as metrics_module
from handlers.routes import all_routes
from tests.test_economy import create_case, funded_user


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_count_requests_openings_and_payments(live, sample_case):
    case = await create_case(live, sample_case)
    token, user_id = await funded_user(live, "measured", 1000)
    await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)
    await live.api.get("/api/nope")
    reply = await live.api.get("/metrics")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain")
    values = samples(reply.body)
    assert values[("cyberhub_cases_opened_total", ())] == 1
    assert values[("cyberhub_payments_credited_total", ())] == 1
    assert values[("cyberhub_payments_credited_amount_total", ())] == 1000
    assert values[("cyberhub_http_requests_total",
                   (("method", "POST"), ("route", "/api/cases/open"), ("status", "200")))] == 1
    assert values[("cyberhub_http_requests_total",
                   (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert values[("cyberhub_http_request_duration_seconds_count",
                   (("method", "POST"), ("route", "/api/cases/open")))] == 1
    assert values[("cyberhub_sockets_connected", ())] == 0
    assert not any(user_id in str(key) for key in values), "user ids never become labels"


def test_request_metrics_reuse_labelled_children_up_to_a_bound(monkeypatch):
    """Each (method, route, status) is looked up in prometheus_client once and
    reused; past MAX_CACHED_CHILDREN (methods are whatever clients send) the
    rest are still counted, just not kept."""
    monkeypatch.setattr(metrics_module, "MAX_CACHED_CHILDREN", 2)
    m = metrics_module.Metrics(connected_sockets=lambda: 0)
    for status in (200, 200, 200, 404, 500, 500):
        m.observe_request("GET", "/api/cases", status, 0.003)
    m.observe_request("BREW", "/api/cases", 405, 0.001)
    assert len(m._request_children) == 2
    values = samples(m.render().decode())
    counts = {s: values[("cyberhub_http_requests_total", (("method", "GET"), ("route", "/api/cases"),
                                                          ("status", s)))] for s in ("200", "404", "500")}
    assert counts == {"200": 3, "404": 1, "500": 2}
    assert values[("cyberhub_http_requests_total", (("method", "BREW"), ("route", "/api/cases"),
                                                    ("status", "405")))] == 1
    assert values[("cyberhub_http_request_duration_seconds_count", (("method", "GET"),
                                                                    ("route", "/api/cases")))] == 6


async def test_metrics_token_when_configured(start_live):
    live = await start_live(metrics_token="scrape-me")
    assert (await live.api.get("/metrics")).status == 401
    assert (await live.api.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await live.api.get("/metrics", headers={"Authorization": "Bearer scrape-me"})).status == 200


async def test_openapi_describes_every_route_with_models(live):
    reply = await live.api.get("/api/openapi.json")
    assert reply.status == 200
    doc = reply.body
    assert doc["openapi"] == "3.1.0"
    assert set(doc["components"]["securitySchemes"]) == {"bearerAuth", "webhookSignature"}
    documented = {path for path in doc["paths"]}
    for pattern, handler, *_ in all_routes():
        api = getattr(handler, "api", None)
        assert api, f"{handler.__name__} declares no operations"
        path = pattern.replace("([^/]+)", "{id}")
        assert path in documented, path
        for method in api:
            op = doc["paths"][path][method]
            assert "200" in op["responses"] or "201" in op["responses"]
            assert all(r["content"]["application/json"]["schema"]["$ref"].startswith("#/components/schemas/")
                       for status, r in op["responses"].items() if status[0] != "2")
    open_op = doc["paths"]["/api/cases/open"]["post"]
    assert open_op["security"] == [{"bearerAuth": []}]
    assert {"400", "401", "404", "409", "413", "429", "503"} <= set(open_op["responses"])
    request_schema = doc["components"]["schemas"]["OpenCaseRequest"]
    assert request_schema["required"] == ["caseId"] and request_schema["additionalProperties"] is False
