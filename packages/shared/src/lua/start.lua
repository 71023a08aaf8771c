--[[
  A worker begins a job (again, after a worker died mid-way: a queued or active job may start).
  Counts the attempt, keeps the first start time, appends the log line and adds the job.active
  event. All of it, or (refused) nothing.

  Input:
    KEYS[1]  job hash
    KEYS[2]  job log (list)
    KEYS[3]  event stream

    ARGV[1]  now (ISO 8601): event time, log line time
    ARGV[2]  now as a JSON string: startedAt when the job never started before
    ARGV[3]  host starting it (log line, event ref)
    ARGV[4]  container (event ref)
    ARGV[5]  job id (event ref)
    ARGV[6]  retention (s) of the job log
    ARGV[7]  event stream MAXLEN (~)

  Output:
    {attempt, startedAt (JSON)}   started: the job is active, attempt counts this start
    0                             refused (no such job, or it is neither queued nor active): nothing written
]]
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return 0 end
local state = cjson.decode(cur)
if state ~= 'queued' and state ~= 'active' then return 0 end

local attempts = redis.call('HGET', KEYS[1], 'attempts')
local attempt = (attempts and tonumber(attempts) or 0) + 1
local startedAt = redis.call('HGET', KEYS[1], 'startedAt') or ARGV[2]
local operation = redis.call('HGET', KEYS[1], 'operation')

redis.call('HSET', KEYS[1], 'state', '"active"', 'attempts', tostring(attempt), 'startedAt', startedAt)

local text
if attempt > 1 then
  text = 'active again on host ' .. ARGV[3] .. ' (attempt ' .. attempt .. ': the previous worker died mid-way)'
else
  text = 'active on host ' .. ARGV[3]
end
redis.call('RPUSH', KEYS[2], ARGV[1] .. ' ' .. text)
redis.call('LTRIM', KEYS[2], -1000, -1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[6]))

-- operation is stored JSON-encoded: it goes into the data as it is.
local fields = {'type', 'job.active', 'time', ARGV[1], 'data',
  '{"operation":' .. operation .. ',"attempt":' .. attempt .. '}'}
if ARGV[3] ~= '' then table.insert(fields, 'host'); table.insert(fields, ARGV[3]) end
if ARGV[4] ~= '' then table.insert(fields, 'container'); table.insert(fields, ARGV[4]) end
table.insert(fields, 'job'); table.insert(fields, ARGV[5])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', unpack(fields))
return {attempt, startedAt}
