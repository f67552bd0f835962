-- Argo CD health of an edfs.io Subgraph (docs/gitops.md). Valid is the operator's check of the
-- schema on its own: True when it parses and normalizes as a federation subgraph, False with
-- every error (InvalidSchema) or when the SDL cannot be read (SchemaUnavailable: its ConfigMap or
-- key is missing). Whether it composes with the others is its Supergraph's health.
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
local valid = nil
for _, c in ipairs(status.conditions or {}) do
  if c.type == "Valid" then
    valid = c
  end
end
if valid ~= nil and valid.status == "True" then
  hs.status = "Healthy"
  hs.message = valid.message
elseif valid ~= nil and valid.status == "False" then
  hs.status = "Degraded"
  hs.message = valid.reason .. ": " .. valid.message
else
  hs.status = "Progressing"
  hs.message = "Waiting for the Valid condition"
end
return hs
