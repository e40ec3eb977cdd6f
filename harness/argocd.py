"""Running the Argo CD health check (helm/argocd/health.lua) the way Argo CD does, under real Lua
(lupa embeds the reference interpreters: 5.1 is Argo CD's dialect, gopher-lua)."""

from __future__ import annotations

import importlib
from typing import Any

from harness.paths import REPO

SCRIPT = (REPO / "helm" / "argocd" / "health.lua").read_text()


def _to_lua(lua: Any, value: Any) -> Any:
    """Python data as Lua tables, as Argo CD hands the object to the script (lists 1-based)."""
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def run_health(obj: dict[str, Any], module: str = "lupa.lua51") -> dict[str, str]:
    """Run health.lua the way Argo CD does: `obj` global, the chunk returns the health table."""
    lua = importlib.import_module(module).LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = _to_lua(lua, obj)
    result = lua.execute(SCRIPT)
    return {"status": result["status"], "message": result["message"]}
