-- Argo CD health of an edfs.io EventProvider (docs/gitops.md). Ready is the operator's check that
-- routers could start with this provider: True when every Secret key it references exists,
-- False (SecretNotFound, SecretKeyNotFound, InvalidSpec) with the Secret, key and field to fix.
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
local ready = nil
for _, c in ipairs(status.conditions or {}) do
  if c.type == "Ready" then
    ready = c
  end
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
elseif ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. ready.message
else
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
end
return hs
