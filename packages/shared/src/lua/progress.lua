--[[
  A running job reports progress: the job's progress field, a log line and the job.progress
  event. Only while the job is active (and, when the caller names its attempt, still that
  attempt): a late report after the job ended writes nothing.

  Input:
    KEYS[1]  job hash
    KEYS[2]  job log (list)
    KEYS[3]  event stream

    ARGV[1]  now (ISO 8601): event time, log line time
    ARGV[2]  the progress, JSON ({"percent":..,"stage":..}): the job's field and the event's data
    ARGV[3]  log line text ("<percent>% <stage>")
    ARGV[4]  host (event ref)
    ARGV[5]  container (event ref)
    ARGV[6]  job id (event ref)
    ARGV[7]  retention (s) of the job log
    ARGV[8]  event stream MAXLEN (~)
    ARGV[9]  the attempt reporting ('' for any)

  Output:
    1   recorded
    0   refused (no such job, not active, or another attempt runs it now): nothing written
]]
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur or cjson.decode(cur) ~= 'active' then return 0 end
if ARGV[9] ~= '' and (redis.call('HGET', KEYS[1], 'attempts') or '0') ~= ARGV[9] then return 0 end

redis.call('HSET', KEYS[1], 'progress', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[1] .. ' ' .. ARGV[3])
redis.call('LTRIM', KEYS[2], -1000, -1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7]))

local fields = {'type', 'job.progress', 'time', ARGV[1], 'data', ARGV[2]}
if ARGV[4] ~= '' then table.insert(fields, 'host'); table.insert(fields, ARGV[4]) end
if ARGV[5] ~= '' then table.insert(fields, 'container'); table.insert(fields, ARGV[5]) end
table.insert(fields, 'job'); table.insert(fields, ARGV[6])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', unpack(fields))
return 1
