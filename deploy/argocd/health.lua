-- Argo CD health check for dbsnapshot.io ClusterSnapshot, SnapshotCopy and
-- SnapshotSchedule (register it for each: resource.customizations.health.dbsnapshot.io_<Kind>,
-- see docs/gitops.md), reading the kstatus conditions the operator writes: Stalled=True is
-- Degraded, Ready=True (for the current generation) is Healthy, anything else is
-- Progressing.
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Deleting"
  return hs
end
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Stalled" and c.status == "True" then
    hs.status = "Degraded"
    hs.message = (c.reason or "") .. ": " .. (c.message or "")
    return hs
  end
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    if c.status == "True" then
      hs.status = "Healthy"
    end
    hs.message = c.message or ""
    return hs
  end
end
return hs
