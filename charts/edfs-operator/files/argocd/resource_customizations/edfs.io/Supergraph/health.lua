-- Argo CD health of an edfs.io Supergraph (docs/gitops.md), from the operator's conditions:
-- - Composed=False (CompositionFailed, NoSubgraphs, SchemaUnavailable, EventProviderNotFound,
--   InvalidSelector, InvalidRouterConfig) is Degraded even while the routers keep serving the
--   last good config: what Git says is not what runs;
-- - Ready=False ApplyFailed (the API refused a router object) is Degraded;
-- - Ready=True with no rollout under way (Progressing not True) is Healthy, and so is a router
--   Deployment scaled to zero on purpose (Ready=False ScaledToZero), as Argo CD rates Deployments;
-- - anything else (a rollout, pods not ready yet, no config yet) is Progressing.
-- Runs without Lua's string library (argocd-cm scripts do by default).
local hs = {}
local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end
if obj.metadata.generation ~= nil and status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end
local composed, ready, progressing = nil, nil, nil
for _, c in ipairs(status.conditions or {}) do
  if c.type == "Composed" then
    composed = c
  elseif c.type == "Ready" then
    ready = c
  elseif c.type == "Progressing" then
    progressing = c
  end
end
local rollingOut = progressing ~= nil and progressing.status == "True"
if composed ~= nil and composed.status == "False" then
  hs.status = "Degraded"
  hs.message = composed.reason .. ": " .. composed.message
elseif ready ~= nil and ready.status == "False" and ready.reason == "ApplyFailed" then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. ready.message
elseif rollingOut then
  hs.status = "Progressing"
  hs.message = progressing.message
elseif ready ~= nil and (ready.status == "True" or ready.reason == "ScaledToZero") then
  hs.status = "Healthy"
  hs.message = ready.message
elseif ready ~= nil then
  hs.status = "Progressing"
  hs.message = ready.message
else
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
end
return hs
