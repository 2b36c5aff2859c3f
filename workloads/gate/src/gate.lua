#!lua
-- shopstream gate: decide and record one batch of sessions atomically.
--
-- KEYS[1] Bloom filter of known users      KEYS[2] HyperLogLog of unique users
-- KEYS[3] hash userId -> session count     KEYS[4..] verdict hashes (sessionId -> verdict),
--                                           one per sessionTimestamp day
-- ARGV[1] verdict TTL in seconds (0: keep forever)   ARGV[2] Bloom error rate
-- ARGV[3] Bloom capacity                            ARGV[4] number of sessions n
-- then n times: sessionId, userId, tag, where tag = 4 * (verdict key index - 4) + risk and
-- risk is 0 (clean), 1 (unknown device), 2 (unknown referrer) or 3 (both).
--
-- Returns n integers: the verdict, 0 (valid) or the risk 1..3 (suspicious), plus 4 when the
-- sessionId was recorded before (replay, duplicate): then the recorded verdict is returned
-- and nothing changes. Verdicts are stored as 'v' or 's:<reason code>'. Every check that can
-- fail runs before the first write, so an error leaves Redis untouched.
--
-- Cost matters (one call per batch of thousands): values cross between Lua and Redis only
-- where a command needs them, tables are indexed directly, and sessions of one day (the usual
-- batch) skip the grouping by verdict key.

local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[4])
local STEP = 1000 -- stay well below Lua's unpack() limit
local STORED = {'s:new_user_unknown_device', 's:new_user_unknown_referrer',
                's:new_user_unknown_device_and_referrer'}
local RECORDED = {v = 4, [STORED[1]] = 5, [STORED[2]] = 6, [STORED[3]] = 7}

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

-- Session i's values are ARGV[3i + 2] (sessionId), ARGV[3i + 3] (userId), ARGV[3i + 4] (tag).
local out = {}       -- i -> reply; set here for recorded sessions
local slot = nil     -- i -> verdict key index; nil when every session is of KEYS[4]

-- Recorded verdicts: HMGET the sessionIds at positions idx (all of them when idx is nil).
local function recorded(key, idx, count)
  local i = 1
  while i <= count do
    local last = math.min(i + STEP - 1, count)
    local sids = {}
    for j = i, last do
      local p = idx and idx[j] or j
      sids[j - i + 1] = ARGV[3 * p + 2]
    end
    local got = redis.call('HMGET', key, unpack(sids))
    for j = i, last do
      local v = got[j - i + 1]
      if v then
        local code = RECORDED[v]
        if not code then return redis.error_reply('GATE_BADVERDICT ' .. key .. ' holds ' .. v) end
        out[idx and idx[j] or j] = code
      end
    end
    i = last + 1
  end
  return nil
end
if #KEYS == 4 then
  err = recorded(KEYS[4], nil, n)
  if err then return err end
else
  slot = {}
  local by_key = {}
  for i = 1, n do
    local k = 4 + math.floor(tonumber(ARGV[3 * i + 4]) / 4)
    slot[i] = k
    local l = by_key[k]
    if not l then l = {}; by_key[k] = l end
    l[#l + 1] = i
  end
  for k, idx in pairs(by_key) do
    err = recorded(KEYS[k], idx, #idx)
    if err then return err end
  end
end

-- New sessions: the first of each sessionId counts; later ones in the batch are duplicates.
local users = {}     -- distinct users of new sessions, in order of appearance
local count = {}     -- userId -> new sessions in this batch
local first = {}     -- sessionId -> position of its first occurrence
local dup = {}       -- i -> position of the first occurrence of its sessionId
for i = 1, n do
  if not out[i] then
    local sid, uid = ARGV[3 * i + 2], ARGV[3 * i + 3]
    local f = first[sid]
    if f then
      dup[i] = f
    else
      first[sid] = i
      local c = count[uid]
      if c then
        count[uid] = c + 1
      else
        count[uid] = 1
        users[#users + 1] = uid
      end
    end
  end
end

-- Bloom membership of those users, before this batch.
local known = {}
if bloom_type ~= 'none' then
  local i = 1
  while i <= #users do
    local last = math.min(i + STEP - 1, #users)
    local got = redis.call('BF.MEXISTS', KEYS[1], unpack(users, i, last))
    for j = i, last do
      if got[j - i + 1] == 1 then known[users[j]] = true end
    end
    i = last + 1
  end
end

-- Decide in order; users that pass become known for the rest of the batch.
local add_list = {}  -- users to add to the filter
local writes = {}    -- verdict key index -> {sid, verdict, sid, verdict, ...}
for i = 1, n do
  if not out[i] then
    local d = dup[i]
    if d then
      out[i] = out[d] + 4
    else
      local uid = ARGV[3 * i + 3]
      local risk = tonumber(ARGV[3 * i + 4]) % 4
      local v = 0
      if not known[uid] then
        if risk ~= 0 then
          v = risk
        else
          known[uid] = true
          add_list[#add_list + 1] = uid
        end
      end
      out[i] = v
      local k = slot and slot[i] or 4
      local w = writes[k]
      if not w then w = {}; writes[k] = w end
      w[#w + 1] = ARGV[3 * i + 2]
      w[#w + 1] = (v == 0) and 'v' or STORED[v]
    end
  end
end

-- Writes.
local function chunked(cmd, key, list, width)
  local i = 1
  while i <= #list do
    local last = math.min(i + STEP * width - 1, #list)
    redis.call(cmd, key, unpack(list, i, last))
    i = last + 1
  end
end
if bloom_type == 'none' then
  redis.call('BF.RESERVE', KEYS[1], ARGV[2], ARGV[3])
end
if #add_list > 0 then chunked('BF.MADD', KEYS[1], add_list, 1) end
-- A user whose count starts now is new to the HyperLogLog too (both are written only here,
-- in the same atomic call): adding the others again would change nothing, so skip them.
local pf_list = {}
for j = 1, #users do
  local uid = users[j]
  local c = count[uid]
  if redis.call('HINCRBY', KEYS[3], uid, c) == c then pf_list[#pf_list + 1] = uid end
end
if #pf_list > 0 then chunked('PFADD', KEYS[2], pf_list, 1) end
for k, list in pairs(writes) do
  chunked('HSET', KEYS[k], list, 2)
  if ttl > 0 then redis.call('EXPIRE', KEYS[k], ttl) end
end
return out
