--[[
  Records a new job: state queued, its place in the job indexes and in each of its locks' pending
  queues, the names it will make claimed, the "being submitted" mark, its first log line and the
  job.queued event. All of it, or (refused) nothing.

  Input:
    KEYS[1]  job hash                      KEYS[5]  submission sequence counter
    KEYS[2]  job log (list)                KEYS[6]  "being submitted" sorted set
    KEYS[3]  index of every job (zset)     KEYS[7]  event stream
    KEYS[4]  the container's job index
    KEYS[8 .. 7+n]              the pending queue (zset) of each of the job's n locks
    KEYS[8+n .. 7+n+m]          the name claim of each of the m names the job will make
    KEYS[8+n+m .. 7+n+2m]       the container record of each of those names (must not exist)
    KEYS[8+n+2m]                (with an Idempotency-Key) the key's record
    KEYS[9+n+2m]                (with an Idempotency-Key whose record was read) the job hash it named

    ARGV[1]  job id                        ARGV[8]  event time (ISO 8601)
    ARGV[2]  creation time (ms): index score and "being submitted" score
    ARGV[3]  first log line                ARGV[9]  the event's data up to the queue position:
    ARGV[4]  retention (s): idempotency record and log        '{"operation":"<op>","queuePosition":'
    ARGV[5]  event stream MAXLEN (~)       ARGV[10] host (event ref)
    ARGV[6]  n (locks)                     ARGV[11] container (event ref)
    ARGV[7]  m (names claimed)             ARGV[12] name claim TTL (s)
    ARGV[13] idempotency: '' without a key; otherwise '=' followed by the job id the caller read
             in the key's record (nothing after '=' when it read none)
    ARGV[14 ..] the job's fields, name / JSON value pairs (without seq: this script numbers it)

  Output:
    {1, seq, queuePosition, eventId}   recorded
    {0, 'exists'}                      a job with this id is already recorded: nothing written
    {0, 'idempotent', id}              the Idempotency-Key names job `id`, which exists: nothing written
    {0, 'retry'}                       the Idempotency-Key's record changed since the caller read it
    {0, 'name', i}                     the i-th name claimed exists or is claimed by another job:
                                       nothing written
]]
local n = tonumber(ARGV[6])
local m = tonumber(ARGV[7])
local id = ARGV[1]

if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 'exists'} end

local idem = ARGV[13]
local idemKey = KEYS[8 + n + 2 * m]
if idem ~= '' then
  local expected = string.sub(idem, 2)
  local cur = redis.call('GET', idemKey)
  if (cur or '') ~= expected then return {0, 'retry'} end
  if cur and redis.call('EXISTS', KEYS[9 + n + 2 * m]) == 1 then return {0, 'idempotent', cur} end
end

for i = 1, m do
  if redis.call('EXISTS', KEYS[7 + n + m + i]) == 1 then return {0, 'name', i} end
  local holder = redis.call('GET', KEYS[7 + n + i])
  if holder and holder ~= id then return {0, 'name', i} end
end

-- Every check passed: from here on, only writes.
local retention = tonumber(ARGV[4])
if idem ~= '' then redis.call('SET', idemKey, id, 'EX', retention) end
for i = 1, m do redis.call('SET', KEYS[7 + n + i], id, 'EX', tonumber(ARGV[12])) end

local seq = redis.call('INCR', KEYS[5])
for i = 14, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'seq', tostring(seq))
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], retention)
local created = tonumber(ARGV[2])
redis.call('ZADD', KEYS[3], created, id)
redis.call('ZADD', KEYS[4], created, id)
redis.call('ZADD', KEYS[6], created, id)

-- Queue position: jobs ahead of this one on its busiest lock.
local position = 0
for i = 1, n do
  redis.call('ZADD', KEYS[7 + i], seq, id)
  local rank = redis.call('ZRANK', KEYS[7 + i], id)
  if rank > position then position = rank end
end

local fields = {'type', 'job.queued', 'time', ARGV[8], 'data', ARGV[9] .. position .. '}'}
if ARGV[10] ~= '' then table.insert(fields, 'host'); table.insert(fields, ARGV[10]) end
if ARGV[11] ~= '' then table.insert(fields, 'container'); table.insert(fields, ARGV[11]) end
table.insert(fields, 'job'); table.insert(fields, id)
local eventId = redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[5], '*', unpack(fields))
return {1, seq, position, eventId}
