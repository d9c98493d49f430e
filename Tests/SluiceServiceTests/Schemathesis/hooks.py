"""Schemathesis hooks for Sluice (SCHEMATHESIS_HOOKS): what openapi.yaml cannot say in JSON Schema.

The filters drop generated bodies that are schema-valid yet break a rule the spec states in prose,
one JSON Schema cannot express (across fields, or against the clock); the server enforces each with
a 422 naming the field. One map stands in for what no schema can generate (a valid training CSV),
and failure filters drop the 422s that are state or the clock, not schema: a repeated
Idempotency-Key, a change checked against the stored key, a boundary case the body filters would
have dropped (the coverage phase sends those without asking them).
"""
import datetime
import math
import os

import schemathesis

MAX_OFFSET_US = 2**51


def _whole(value):
    """An integer as JSON Schema counts one (5 or 5.0), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _policy_fits(policy):
    """gcra.lua's bound: burst × emission interval below 2^51 µs (Policy.validationError)."""
    rate = _whole(policy.get("rate"))
    burst = _whole(policy.get("burst", policy.get("rate")))
    period = policy.get("period")
    if rate is None or burst is None or isinstance(period, bool) or not isinstance(period, (int, float)) or rate < 1 or burst < 1:
        return True  # not a positive case: left to the negative checks
    if not (0.000001 <= period <= 1e9):
        return True  # out of the schema's range (NaN and infinities too): a negative case
    period_us = math.floor(period * 1_000_000 + 0.5)  # as Swift rounds (half away from zero)
    interval = (period_us + rate - 1) // rate
    return rate < MAX_OFFSET_US and burst < MAX_OFFSET_US and interval * burst < MAX_OFFSET_US


def _future(text):
    if not isinstance(text, str):
        return True  # not a date: left to the negative checks
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return True  # not a date: left to the negative checks
    if moment.tzinfo is None:
        return True
    return moment > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)


@schemathesis.hook("filter_body").apply_to(path="/v1/keys", method="POST")
def key_spec_rules(context, body):
    if not isinstance(body, dict):
        return True
    policies = body.get("policies")
    if isinstance(policies, list):
        names = [p.get("name", "default") for p in policies if isinstance(p, dict)]
        if not all(isinstance(name, str) for name in names):
            return True  # not a positive case: left to the negative checks
        if len(names) != len(set(names)):
            return False  # "a key's policies have distinct names"
        if not all(_policy_fits(p) for p in policies if isinstance(p, dict)):
            return False
        modes = [p.get("mode", "enforce") for p in policies if isinstance(p, dict)]
        if modes and all(mode == "shadow" for mode in modes) and "quota_per_day" not in body:
            return False  # "at least one is enforced unless the key has a quota_per_day"
    if isinstance(body.get("expires_at"), str) and not _future(body["expires_at"]):
        return False  # "expires_at must lie in the future"
    return True


@schemathesis.hook("filter_body").apply_to(path="/v1/models", method="POST")
def training_rows_cover_every_class(context, body):
    """"at least one row of every class" (JSON form)."""
    if isinstance(body, dict) and isinstance(body.get("rows"), list):
        labels = {row.get("species") for row in body["rows"] if isinstance(row, dict) and isinstance(row.get("species"), str)}
        if all(isinstance(row, dict) for row in body["rows"]) and len(body["rows"]) >= 30:
            return {"setosa", "versicolor", "virginica"} <= labels
    return True


_IRIS = open(os.path.join(os.path.dirname(__file__), "../../../data/iris.csv")).read()


@schemathesis.hook("map_case").apply_to(path="/v1/models", method="POST")
def csv_uploads_are_training_data(context, case):
    """JSON Schema cannot describe a valid CSV file: a generated text/csv upload becomes the shipped
    data set (a valid upload). JSON uploads are generated as they are."""
    if (case.media_type or "").startswith("text/csv"):
        case.body = _IRIS
    return case


@schemathesis.hook("filter_failure").apply_to(path="/v1/predict", method="POST")
def a_reused_idempotency_key_is_state_not_schema(context, failure, case, response):
    """A generated Idempotency-Key may repeat with another body; the 422 that earns is by design
    (draft-ietf-httpapi-idempotency-key-header), a matter of state the schema cannot carry. Only
    that failure is dropped, and only with that problem type."""
    try:
        problem = response.json()
    except Exception:
        return True
    return not (response.status_code == 422 and isinstance(problem, dict) and problem.get("type") == "/problems/idempotency-key-reused")


@schemathesis.hook("filter_body").apply_to(path="/v1/keys/{id}", method="PATCH")
def key_patch_rules(context, body):
    """A change obeys the same stateless rules as a new key."""
    return key_spec_rules(context, body)


# Rules a change is checked against *together with the key it changes* (openapi.yaml, PATCH):
# max_delay/max_queue_delay/max_depth against the key's overflow, on_redis_failure against its
# scopes, shadow-only policies against its quota. No schema of the body alone can carry them.
_STORED_STATE_POINTERS = {"/max_delay", "/max_queue_delay", "/max_depth", "/on_redis_failure", "/policies"}


@schemathesis.hook("filter_failure").apply_to(path="/v1/keys/{id}", method="PATCH")
def a_change_is_checked_against_the_stored_key(context, failure, case, response):
    """Only a 422 whose every error names such a field is dropped; any other failure stands."""
    try:
        problem = response.json()
    except Exception:
        return True
    if response.status_code != 422 or not isinstance(problem, dict):
        return True
    if _breaks_a_prose_rule(case.body):
        return False  # as for POST: a boundary case no filter_body saw
    pointers = {error.get("pointer") for error in problem.get("errors", []) if isinstance(error, dict)}
    return not (pointers and pointers <= _STORED_STATE_POINTERS)



def _breaks_a_prose_rule(body):
    """A key body that `key_spec_rules` would have dropped before sending."""
    return isinstance(body, dict) and not key_spec_rules(None, body)


@schemathesis.hook("filter_failure").apply_to(path="/v1/keys", method="POST")
def a_prose_rule_broken_by_a_boundary_case(context, failure, case, response):
    """The coverage phase sends boundary cases (a date of 2000-01-01, two equal policies) that no
    filter_body sees: the 422 of a body that really breaks a rule of key_spec_rules is dropped;
    any other failure stands."""
    return not (response.status_code == 422 and _breaks_a_prose_rule(case.body))


def _only_pointers(response, pointers):
    """A 422 whose every error names one of `pointers`."""
    try:
        problem = response.json()
    except Exception:
        return False
    if response.status_code != 422 or not isinstance(problem, dict):
        return False
    named = {error.get("pointer") for error in problem.get("errors", []) if isinstance(error, dict)}
    return bool(named) and named <= pointers


@schemathesis.hook("filter_failure").apply_to(path="/v1/keys", method="POST")
def a_tenant_that_does_not_exist_is_state_not_schema(context, failure, case, response):
    """A generated `tenant` matches the id pattern but names no tenant: 422 at /tenant, by design
    (a reference, which no schema can check). Only a 422 naming /tenant alone is dropped."""
    return not _only_pointers(response, {"/tenant"})


@schemathesis.hook("filter_failure").apply_to(path="/v1/keys/{id}", method="PATCH")
def a_patched_tenant_that_does_not_exist_is_state_not_schema(context, failure, case, response):
    return not _only_pointers(response, {"/tenant"})


@schemathesis.hook("filter_body").apply_to(path="/v1/tenants", method="POST")
def tenant_spec_rules(context, body):
    """A tenant's policies obey a key's rules (distinct names, gcra.lua's bound, one enforced
    unless there is a quota)."""
    return key_spec_rules(context, body)


@schemathesis.hook("filter_body").apply_to(path="/v1/tenants/{id}", method="PATCH")
def tenant_patch_rules(context, body):
    return key_spec_rules(context, body)


@schemathesis.hook("filter_failure").apply_to(path="/v1/tenants", method="POST")
def a_tenant_rule_broken_by_a_boundary_case(context, failure, case, response):
    return not (response.status_code == 422 and _breaks_a_prose_rule(case.body))


@schemathesis.hook("filter_failure").apply_to(path="/v1/tenants/{id}", method="PATCH")
def a_tenant_change_is_checked_against_the_stored_tenant(context, failure, case, response):
    """Shadow-only policies are checked against the stored quota, and the reverse."""
    if response.status_code == 422 and _breaks_a_prose_rule(case.body):
        return False
    return not _only_pointers(response, {"/policies"})
