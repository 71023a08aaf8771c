--[[
  Ends a job: completed, failed or cancelled (a cancel is an end like the others). Writes the
  final state and its fields, starts the record's retention, takes the job out of its locks'
  pending queues, frees the names it claimed, appends the log line, adds the end event and
  publishes the job's id on the job-done channel. All of it, or (refused) nothing: a job ends
  once, so it has one end event.

  Input:
    KEYS[1]  job hash
    KEYS[2]  job log (list)
    KEYS[3]  event stream
    KEYS[4 .. 3+n]     the pending queue (zset) of each of the job's n locks
    KEYS[4+n .. 3+2n]  the name claim of each of those lock names (freed only if this job holds it)

    ARGV[1]  the states it may end from, comma-separated (e.g. "queued,active")
    ARGV[2]  the final state: completed | failed | cancelled
    ARGV[3]  now (ISO 8601): event time, log line time
    ARGV[4]  log line text
    ARGV[5]  retention (s) of the job record and log
    ARGV[6]  event stream MAXLEN (~)
    ARGV[7]  the event's data (JSON)
    ARGV[8]  host (event ref)
    ARGV[9]  container (event ref)
    ARGV[10] job id (event ref, and the message published)
    ARGV[11] the job-done pub/sub channel (a channel, not a key)
    ARGV[12] the attempt ending it ('' for any): a worker's late end of an attempt that is no
             longer the job's current one is refused
    ARGV[13] n (locks)
    ARGV[14 ..] the job's fields to write, name / JSON value pairs (finishedAt, result, error)

  Output:
    1   ended
    0   refused (no such job, not in one of the allowed states, or another attempt): nothing written
]]
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return 0 end
local state = cjson.decode(cur)
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == state then allowed = true end
end
if not allowed then return 0 end
if ARGV[12] ~= '' and (redis.call('HGET', KEYS[1], 'attempts') or '0') ~= ARGV[12] then return 0 end

local retention = tonumber(ARGV[5])
local n = tonumber(ARGV[13])
local id = ARGV[10]

redis.call('HSET', KEYS[1], 'state', cjson.encode(ARGV[2]))
for i = 14, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], retention)
for i = 1, n do
  redis.call('ZREM', KEYS[3 + i], id)
  if redis.call('GET', KEYS[3 + n + i]) == id then redis.call('DEL', KEYS[3 + n + i]) end
end
redis.call('RPUSH', KEYS[2], ARGV[3] .. ' ' .. ARGV[4])
redis.call('LTRIM', KEYS[2], -1000, -1)
redis.call('EXPIRE', KEYS[2], retention)

local fields = {'type', 'job.' .. ARGV[2], 'time', ARGV[3], 'data', ARGV[7]}
if ARGV[8] ~= '' then table.insert(fields, 'host'); table.insert(fields, ARGV[8]) end
if ARGV[9] ~= '' then table.insert(fields, 'container'); table.insert(fields, ARGV[9]) end
table.insert(fields, 'job'); table.insert(fields, id)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', unpack(fields))
redis.call('PUBLISH', ARGV[11], id)
return 1
