--[[
  Tidies after a job that has already ended (or whose record expired): takes it out of its locks'
  pending queues and frees the names it still holds. finish.lua does both when the job ends; this
  is for records ended otherwise (before the ledger, or by hand) that a worker is handed again.
  It touches nothing while the job has not ended.

  Input:
    KEYS[1]  job hash
    KEYS[2 .. 1+n]     the pending queue (zset) of each of the job's n locks
    KEYS[2+n .. 1+2n]  the name claim of each of those lock names (freed only if this job holds it)

    ARGV[1]  job id
    ARGV[2]  n (locks)
    ARGV[3 ..] the final states (completed, failed, cancelled)

  Output:
    1   the job had ended (or its record is gone): tidied
    0   the job has not ended: nothing written
]]
local cur = redis.call('HGET', KEYS[1], 'state')
if cur then
  local state = cjson.decode(cur)
  local final = false
  for i = 3, #ARGV do
    if ARGV[i] == state then final = true end
  end
  if not final then return 0 end
end
local n = tonumber(ARGV[2])
for i = 1, n do
  redis.call('ZREM', KEYS[1 + i], ARGV[1])
  if redis.call('GET', KEYS[1 + n + i]) == ARGV[1] then redis.call('DEL', KEYS[1 + n + i]) end
end
return 1
