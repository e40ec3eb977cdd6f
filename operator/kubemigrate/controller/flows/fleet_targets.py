"""Which targets a fleet has now: the Secrets its selector matches, or its schemas.

Resolved at each step, so a tenant's Secret (or schema) that appears later is found at the next
resync and migrated by a wave of its own. A selector that matches nothing is said plainly,
never taken as a rollout of 0 targets that is Ready.
"""

from __future__ import annotations

import asyncio

from kubemigrate.controller.flows.context import StepContext
from kubemigrate.controller.flows.set_source import Refusal
from kubemigrate.controller.kube.api import Forbidden, NotFound
from kubemigrate.controller.kube.fleet_api import FleetApi
from kubemigrate.engine import EngineError, SchemaQueryFailed, query_schemas
from kubemigrate.models.fleet import MAX_SCHEMA_NAMES, Targets


async def resolve(
    namespace: str, targets: Targets, ctx: StepContext, fleet: FleetApi, uid: str
) -> list[str] | Refusal:
    """The fleet's target names, sorted, or why there are none."""
    if targets.secret_selector is not None:
        selector = targets.secret_selector.as_string()
        try:
            names = await fleet.secret_names(namespace, selector)
        except Forbidden:
            return Refusal(
                "SecretsNotListable",
                f"the operator may not list Secrets in namespace {namespace}: a fleet chosen by "
                "label needs the chart's rbac.secrets.list=true (Secrets are listed as metadata "
                "only, never their values)",
            )
        where = f"no Secret in namespace {namespace} matches spec.targets.secretSelector {selector}"
    else:
        schemas = targets.schemas
        assert schemas is not None
        if schemas.names is not None:
            names = sorted(set(schemas.names))
        else:
            found = await _query(namespace, targets, ctx, uid)
            if isinstance(found, Refusal):
                return found
            names = found
        where = "spec.targets.schemas names no schema"
    if not names:
        return Refusal("NoTargets", f"{where}: nothing to migrate", transient=False)
    return names


async def _query(
    namespace: str, targets: Targets, ctx: StepContext, uid: str
) -> list[str] | Refusal:
    schemas = targets.schemas
    assert schemas is not None and schemas.query is not None
    ref = schemas.database.secret_ref
    try:
        url = await ctx.api.secret_value(namespace, ref.name, ref.key)
    except NotFound as exc:
        return Refusal(exc.reason("Secret"), str(exc), transient=True)
    try:
        return await asyncio.to_thread(
            query_schemas,
            url,
            schemas.query,
            limit=MAX_SCHEMA_NAMES,
            application_name=f"kubemigrate-operator {uid}"[:63],
        )
    except SchemaQueryFailed as exc:
        return Refusal(exc.reason, str(exc))
    except EngineError as exc:
        return Refusal("DatabaseUnavailable", str(exc), transient=True)
