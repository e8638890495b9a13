"""The Lua scripts of the Redis transport: each runs atomically on the server.

Every script gets the key prefix (``global_keyprefix``) as ``ARGV[1]`` and
builds kombu's key names (``unacked``, ``unacked_index``) and ours
(``_qm.*``) from it. Redis Cluster is out of scope, so scripts may touch
keys they compute instead of receiving them in ``KEYS``.

Our extra keys, which Celery and kombu never read:

- ``_qm.owner``: hash, delivery tag -> consumer token;
- ``_qm.owned.<token>``: set of the delivery tags a consumer holds;
- ``_qm.heartbeat.<token>``: the consumer's lease in seconds, expiring after
  the heartbeat TTL, so it disappears soon after its process dies;
- ``_qm.consumers``: set of the tokens that hold (or held) deliveries;
- ``_qm.deliveries``: hash, delivery tag -> how often it was delivered;
- ``_qm.delayed``: sorted set of delayed messages by due time; a member is
  ``"<len(list key)>:<len(wake key)>:" + list key + wake key + envelope``;
- ``_qm.wake.<queue>``: a list of at most one element that producers push
  to beside each message, so waiting consumers block on it (BLPOP) instead
  of polling; the message itself is only ever taken by :data:`CLAIM`;
- ``_qm.malformed``: where :data:`CLAIM` puts envelopes it cannot read,
  until the client moves them to a dead-letter queue.
"""

from __future__ import annotations

__all__ = ["CLAIM", "DECLARE", "LOST", "RENEW", "RESTORE", "SETTLE", "SWEEP"]

# Shared prologue: key names from the prefix.
_KEYS = """
local P = ARGV[1]
local unacked = P .. 'unacked'
local index = P .. 'unacked_index'
local owner = P .. '_qm.owner'
local counts = P .. '_qm.deliveries'
local function wake(key)
  if key ~= '' then
    redis.call('LPUSH', key, '1')
    redis.call('LTRIM', key, 0, 0)
  end
end
"""

#: Move due delayed messages to their lists, then pop up to ``limit``
#: envelopes and record each as unacked (kombu's ``unacked`` hash and
#: ``unacked_index`` zset) and as ours, in one step: no window in which a
#: popped message belongs to nobody.
#:
#: ARGV: prefix, token, now, limit, lease, heartbeat TTL (ms), number of
#: lists, then per list (in reading order): list key, the unacked value's
#: suffix (``, "", "<queue>"]``), wake key.
#: Returns ``[next due time or nil, i, envelope, count, ...]`` where ``i`` is
#: the list's position (0-based) and ``count`` the delivery count, or -1 for
#: an envelope that could not be read (moved to ``_qm.malformed``).
CLAIM = (
    _KEYS
    + """
local token = ARGV[2]
local now = ARGV[3]
local limit = tonumber(ARGV[4])
local nlists = tonumber(ARGV[7])
local delayed = P .. '_qm.delayed'
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1000)
for _, member in ipairs(due) do
  local a = string.find(member, ':', 1, true)
  local b = string.find(member, ':', a + 1, true)
  local klen = tonumber(string.sub(member, 1, a - 1))
  local wlen = tonumber(string.sub(member, a + 1, b - 1))
  local key = string.sub(member, b + 1, b + klen)
  redis.call('LPUSH', key, string.sub(member, b + klen + wlen + 1))
  wake(string.sub(member, b + klen + 1, b + klen + wlen))
  redis.call('ZREM', delayed, member)
end
local out = {false}
local n = 0
local owned = P .. '_qm.owned.' .. token
local aside = P .. '_qm.malformed'
for i = 0, nlists - 1 do
  local key = ARGV[8 + 3 * i]
  local suffix = ARGV[9 + 3 * i]
  while n < limit do
    local raw = redis.call('RPOP', key)
    if not raw then
      break
    end
    n = n + 1
    local ok, envelope = pcall(cjson.decode, raw)
    local tag = nil
    if ok and type(envelope) == 'table' then
      local properties = envelope['properties']
      if type(properties) == 'table' then
        tag = properties['delivery_tag']
      end
    end
    if type(tag) == 'string' and tag ~= '' then
      redis.call('HSET', unacked, tag, '[' .. raw .. suffix)
      redis.call('ZADD', index, now, tag)
      redis.call('HSET', owner, tag, token)
      redis.call('SADD', owned, tag)
      out[#out + 1] = i
      out[#out + 1] = raw
      out[#out + 1] = redis.call('HINCRBY', counts, tag, 1)
    else
      redis.call('RPUSH', aside, raw)
      out[#out + 1] = i
      out[#out + 1] = raw
      out[#out + 1] = -1
    end
  end
end
if n > 0 then
  redis.call('SET', P .. '_qm.heartbeat.' .. token, ARGV[5], 'PX', ARGV[6])
  redis.call('SADD', P .. '_qm.consumers', token)
end
if n >= limit then
  -- Stopped early: wake another consumer for what is left.
  local woken = {}
  for i = 0, nlists - 1 do
    local key = ARGV[10 + 3 * i]
    if not woken[key] and redis.call('LLEN', ARGV[8 + 3 * i]) > 0 then
      woken[key] = true
      wake(key)
    end
  end
end
local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
if #first > 0 then
  out[1] = first[2]
end
return out
"""
)

#: Settle deliveries a consumer still owns; a tag it lost (restored by a
#: sweep, maybe claimed by another consumer since) is skipped.
#:
#: ARGV: prefix, token, mode, then per delivery: ``ack``: the tag;
#: ``requeue``: tag, list key, envelope, wake key (pushed back to the front,
#: keeping the delivery count); ``release``: as ``requeue``, taking this
#: delivery off the count; ``move``: tag, target list key (``""``:
#: drop), new envelope, wake key (pushed to the back). Returns how many
#: deliveries were still owned.
SETTLE = (
    _KEYS
    + """
local owned = P .. '_qm.owned.' .. ARGV[2]
local mode = ARGV[3]
local step = 4
if mode == 'ack' then
  step = 1
end
local gone = {}
for i = 4, #ARGV, step do
  local tag = ARGV[i]
  if redis.call('SREM', owned, tag) == 1 then
    gone[#gone + 1] = tag
    if mode == 'requeue' or mode == 'release' then
      redis.call('RPUSH', ARGV[i + 1], ARGV[i + 2])
      wake(ARGV[i + 3])
    elseif mode == 'move' and ARGV[i + 1] ~= '' then
      redis.call('LPUSH', ARGV[i + 1], ARGV[i + 2])
      wake(ARGV[i + 3])
    end
  end
end
if #gone > 0 then
  redis.call('HDEL', unacked, unpack(gone))
  redis.call('ZREM', index, unpack(gone))
  redis.call('HDEL', owner, unpack(gone))
  if mode == 'release' then
    for _, tag in ipairs(gone) do
      redis.call('HINCRBY', counts, tag, -1)
    end
  elseif mode ~= 'requeue' then
    redis.call('HDEL', counts, unpack(gone))
  end
end
return #gone
"""
)

#: Refresh a consumer's heartbeat and push the leases of the deliveries it
#: still owns: their ``unacked_index`` score becomes ``lease end - lease``,
#: so kombu's visibility sweep sees them as just delivered.
#:
#: ARGV: prefix, token, lease, heartbeat TTL (ms), then tag, score pairs.
RENEW = (
    _KEYS
    + """
local token = ARGV[2]
redis.call('SET', P .. '_qm.heartbeat.' .. token, ARGV[3], 'PX', ARGV[4])
redis.call('SADD', P .. '_qm.consumers', token)
local owned = P .. '_qm.owned.' .. token
local n = 0
for i = 5, #ARGV, 2 do
  local tag = ARGV[i]
  if redis.call('SISMEMBER', owned, tag) == 1 then
    local current = redis.call('ZSCORE', index, tag)
    if current and tonumber(current) < tonumber(ARGV[i + 1]) then
      redis.call('ZADD', index, ARGV[i + 1], tag)
    end
    n = n + 1
  end
end
return n
"""
)

#: Find unacked entries to restore: those of consumers whose heartbeat
#: expired, those whose owner's lease ended, and entries without an owner
#: (written by kombu consumers) older than the unowned timeout.
#:
#: ARGV: prefix, now, unowned timeout, score bound (entries below it are
#: examined), limit. Returns ``[tag, unacked value, score, owner, ...]``
#: (owner ``""`` for kombu's entries); :data:`RESTORE` acts on them only if
#: nothing changed meanwhile.
SWEEP = (
    _KEYS
    + """
local now = tonumber(ARGV[2])
local unowned = tonumber(ARGV[3])
local limit = tonumber(ARGV[5])
local consumers = P .. '_qm.consumers'
local out = {}
local seen = {}
local function add(tag, who, score)
  if seen[tag] or #out >= 4 * limit then
    return
  end
  local value = redis.call('HGET', unacked, tag)
  if value then
    seen[tag] = true
    out[#out + 1] = tag
    out[#out + 1] = value
    out[#out + 1] = score or redis.call('ZSCORE', index, tag) or ''
    out[#out + 1] = who
  end
end
for _, token in ipairs(redis.call('SMEMBERS', consumers)) do
  if redis.call('EXISTS', P .. '_qm.heartbeat.' .. token) == 0 then
    local set = P .. '_qm.owned.' .. token
    local tags = redis.call('SRANDMEMBER', set, limit)
    if #tags == 0 then
      redis.call('SREM', consumers, token)
    end
    for _, tag in ipairs(tags) do
      if redis.call('HGET', owner, tag) == token
          and redis.call('HEXISTS', unacked, tag) == 1 then
        add(tag, token, nil)
      else
        redis.call('SREM', set, tag)
      end
    end
  end
end
local old = redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. ARGV[4],
  'WITHSCORES', 'LIMIT', 0, limit)
for j = 1, #old, 2 do
  local tag = old[j]
  local score = tonumber(old[j + 1])
  local who = redis.call('HGET', owner, tag)
  if who then
    local lease = redis.call('GET', P .. '_qm.heartbeat.' .. who)
    if (not lease) or score < now - tonumber(lease) then
      add(tag, who, old[j + 1])
    end
  elseif score < now - unowned then
    add(tag, '', old[j + 1])
  end
end
return out
"""
)

#: Find the deliveries of claims whose reply a lost connection took: those a
#: consumer owns with the ``unacked_index`` score its claim gave them (the
#: claim's ``now``; nothing else sets that score), which it never saw.
#:
#: ARGV: prefix, token, then the ``now`` of each lost claim. Returns
#: :data:`SWEEP`'s ``[tag, unacked value, score, owner, ...]``, for
#: :data:`RESTORE`.
LOST = (
    _KEYS
    + """
local token = ARGV[2]
local lost = {}
for i = 3, #ARGV do
  lost[tonumber(ARGV[i])] = true
end
local out = {}
for _, tag in ipairs(redis.call('SMEMBERS', P .. '_qm.owned.' .. token)) do
  local score = redis.call('ZSCORE', index, tag)
  if score and lost[tonumber(score)] and redis.call('HGET', owner, tag) == token then
    local value = redis.call('HGET', unacked, tag)
    if value then
      out[#out + 1] = tag
      out[#out + 1] = value
      out[#out + 1] = score
      out[#out + 1] = token
    end
  end
end
return out
"""
)

#: Restore entries found by :data:`SWEEP`, each only if its unacked value,
#: score and owner are unchanged (so several sweepers never restore one
#: twice, and a renewed lease is respected). Restored envelopes go to the
#: front of their list (``RPUSH``), as kombu's sweep does.
#:
#: ARGV: prefix, then groups of tag, expected value, expected score,
#: expected owner, target list key (``""``: drop), envelope, wake key. A tag
#: may repeat for further targets. Returns how many entries were restored.
RESTORE = (
    _KEYS
    + """
local done = {}
local n = 0
for i = 2, #ARGV, 7 do
  local tag = ARGV[i]
  local ok = done[tag]
  if ok == nil then
    ok = redis.call('HGET', unacked, tag) == ARGV[i + 1]
      and (redis.call('ZSCORE', index, tag) or '') == ARGV[i + 2]
      and (redis.call('HGET', owner, tag) or '') == ARGV[i + 3]
    if ok then
      redis.call('HDEL', unacked, tag)
      redis.call('ZREM', index, tag)
      redis.call('HDEL', owner, tag)
      if ARGV[i + 3] ~= '' then
        redis.call('SREM', P .. '_qm.owned.' .. ARGV[i + 3], tag)
      end
      n = n + 1
    end
    done[tag] = ok
  end
  if ok and ARGV[i + 4] ~= '' then
    redis.call('RPUSH', ARGV[i + 4], ARGV[i + 5])
    wake(ARGV[i + 6])
  end
end
return n
"""
)

#: Store a declaration unless one exists; return the existing one (or nil).
#: KEYS[1]: the declaration key; ARGV[1]: its JSON arguments.
DECLARE = """
local current = redis.call('GET', KEYS[1])
if current then
  return current
end
redis.call('SET', KEYS[1], ARGV[1])
return false
"""
