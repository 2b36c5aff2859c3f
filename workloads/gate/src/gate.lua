#!lua
-- shopstream gate: decide and record one batch of sessions atomically.
--
-- KEYS[1] Bloom filter of known users      KEYS[2] HyperLogLog of unique users
-- KEYS[3] hash userId -> session count     KEYS[4..] verdict hashes (sessionId -> verdict),
--                                           one per sessionTimestamp day
-- ARGV[1] verdict TTL in seconds (0: keep forever)   ARGV[2] Bloom error rate
-- ARGV[3] Bloom capacity                            ARGV[4] number of sessions n
-- then n times: sessionId, userId, risk code ('' for a clean session), verdict key index (4..)
--
-- Returns n verdicts: 'v' (valid) or 's:<risk code>' (suspicious). A sessionId already
-- recorded (replay, duplicate) returns its recorded verdict prefixed with '=' and changes
-- nothing. Every check
-- that can fail runs before the first write, so an error leaves Redis untouched.

local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[4])
local STEP = 1000 -- stay well below Lua's unpack() limit

local function chunked(cmd, key, list, width)
  local i = 1
  while i <= #list do
    local last = math.min(i + STEP * width - 1, #list)
    redis.call(cmd, key, unpack(list, i, last))
    i = last + 1
  end
end

-- Type checks first (no write has happened yet).
local function expect_type(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then
    return redis.error_reply('GATE_WRONGTYPE ' .. key .. ' holds a ' .. t .. ', expected ' .. want)
  end
  return nil
end
local bloom_type = redis.call('TYPE', KEYS[1])['ok']
if bloom_type ~= 'none' and bloom_type ~= 'MBbloom--' then
  return redis.error_reply('GATE_WRONGTYPE ' .. KEYS[1] .. ' holds a ' .. bloom_type .. ', expected a Bloom filter')
end
local err = expect_type(KEYS[2], 'string') or expect_type(KEYS[3], 'hash')
if err then return err end
for k = 4, #KEYS do
  err = expect_type(KEYS[k], 'hash')
  if err then return err end
end

-- Recorded verdicts, one HMGET per verdict hash.
local recorded = {}
local by_key = {}
for i = 1, n do
  local base = 4 + (i - 1) * 4
  local k = tonumber(ARGV[base + 4])
  by_key[k] = by_key[k] or {}
  table.insert(by_key[k], i)
end
for k, idx in pairs(by_key) do
  local i = 1
  while i <= #idx do
    local last = math.min(i + STEP - 1, #idx)
    local sids = {}
    for j = i, last do sids[#sids + 1] = ARGV[4 + (idx[j] - 1) * 4 + 1] end
    local got = redis.call('HMGET', KEYS[k], unpack(sids))
    for j = i, last do
      local v = got[j - i + 1]
      if v then recorded[idx[j]] = v end
    end
    i = last + 1
  end
end

-- Bloom membership of the users of new sessions, in one BF.MEXISTS (chunked).
local ask = {}
local ask_pos = {}
for i = 1, n do
  if not recorded[i] then
    ask[#ask + 1] = ARGV[4 + (i - 1) * 4 + 2]
    ask_pos[i] = #ask
  end
end
local known_before = {}
if #ask > 0 and bloom_type ~= 'none' then
  local i = 1
  while i <= #ask do
    local last = math.min(i + STEP - 1, #ask)
    local got = redis.call('BF.MEXISTS', KEYS[1], unpack(ask, i, last))
    for j = i, last do known_before[j] = (got[j - i + 1] == 1) end
    i = last + 1
  end
end

-- Decide in order; users that pass become known for the rest of the batch.
local out = {}
local decided = {}   -- sessionId -> verdict within this batch
local added = {}     -- users added to the filter in this batch
local add_list = {}
local counts = {}
local count_users = {}
local pf_list = {}
local writes = {}    -- verdict key index -> {sid, v, sid, v, ...}
for i = 1, n do
  local base = 4 + (i - 1) * 4
  local sid, uid, risk, k = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], tonumber(ARGV[base + 4])
  if recorded[i] then
    out[i] = '=' .. recorded[i]
  elseif decided[sid] then
    out[i] = '=' .. decided[sid]
  else
    local known = added[uid] or known_before[ask_pos[i]]
    local v
    if risk ~= '' and not known then
      v = 's:' .. risk
    else
      v = 'v'
      if not known then
        added[uid] = true
        add_list[#add_list + 1] = uid
      end
    end
    out[i] = v
    decided[sid] = v
    if not counts[uid] then
      counts[uid] = 0
      count_users[#count_users + 1] = uid
    end
    counts[uid] = counts[uid] + 1
    writes[k] = writes[k] or {}
    table.insert(writes[k], sid)
    table.insert(writes[k], v)
  end
end

-- Writes.
if bloom_type == 'none' then
  redis.call('BF.RESERVE', KEYS[1], ARGV[2], ARGV[3])
end
if #add_list > 0 then chunked('BF.MADD', KEYS[1], add_list, 1) end
-- A user whose count starts now is new to the HyperLogLog too (both are written only here,
-- in the same atomic call): adding the others again would change nothing, so skip them.
for _, uid in ipairs(count_users) do
  if redis.call('HINCRBY', KEYS[3], uid, counts[uid]) == counts[uid] then
    pf_list[#pf_list + 1] = uid
  end
end
if #pf_list > 0 then chunked('PFADD', KEYS[2], pf_list, 1) end
for k, list in pairs(writes) do
  chunked('HSET', KEYS[k], list, 2)
  if ttl > 0 then redis.call('EXPIRE', KEYS[k], ttl) end
end
return out
