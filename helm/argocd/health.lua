-- Argo CD health check for every kubemigrate.dev kind (Migration, MigrationSet, DatabaseBackup,
-- DatabaseRestore, DatabaseBackupSchedule).
--
-- The operator writes kstatus conditions (Ready, Reconciling, Stalled), each with the
-- observedGeneration it describes, plus status.observedGeneration and status.phase:
--   Healthy      Ready=True and the status describes the current generation
--   Degraded     Stalled=True, or phase Failed (a change of spec is needed)
--   Progressing  everything else: no status yet, a stale observedGeneration, work under way
-- A stale status is never Healthy or Degraded: after a spec change the old verdict no longer
-- applies until the operator has observed the new generation.
-- Written for Lua 5.1 (Argo CD's gopher-lua) and tested with Lua 5.4+ (lupa).

local hs = {status = "Progressing", message = "Waiting for the kubemigrate operator"}

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function nonempty(s)
  return s ~= nil and s ~= ""
end

local status = obj.status
if status == nil then
  return hs
end

local generation = obj.metadata and obj.metadata.generation
local ready = condition(status, "Ready")
local stalled = condition(status, "Stalled")
local reconciling = condition(status, "Reconciling")

if generation ~= nil then
  if status.observedGeneration == nil or status.observedGeneration ~= generation then
    hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
    return hs
  end
  if ready ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration ~= generation then
    hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
    return hs
  end
end

-- The message: the Ready condition's, else status.message, else the phase.
local message = nil
if ready ~= nil and nonempty(ready.message) then
  message = ready.message
elseif nonempty(status.message) then
  message = status.message
elseif nonempty(status.phase) then
  message = "Phase " .. status.phase
end

if (stalled ~= nil and stalled.status == "True") or status.phase == "Failed" then
  hs.status = "Degraded"
  if stalled ~= nil and stalled.status == "True" and nonempty(stalled.message) and message == nil then
    message = stalled.message
  end
  hs.message = message or "Failed"
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message or "Ready"
  return hs
end

if reconciling ~= nil and reconciling.status == "True" and nonempty(reconciling.message) then
  hs.message = reconciling.message
elseif message ~= nil then
  hs.message = message
end
return hs
