/* cluster_scripts.c: the cluster's Lua scripts (cluster_scripts.h).
 *
 * Publications are one line of numbers, a newline, then text:
 *   M<node> <nseq> <id> <ts> <from bytes> <name bytes>\n<from><name><text>
 *   E<node> <J|L|N> <member> <count> <nseq>\n[<rooms, space-separated>\n]<event JSON>
 * (rooms only for N). Keys use {room} hash tags so one room's keys
 * would share a Redis Cluster slot. */
#include "cluster_scripts.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

/* KEYS: log. ARGV: channel, maxlen, node, nseq, from, name, text, ts */
static const char post_lua[] =
	"local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '0-*',\n"
	"  'node', ARGV[3], 'nseq', ARGV[4], 'from', ARGV[5], 'name', ARGV[6],\n"
	"  'text', ARGV[7], 'ts', ARGV[8])\n"
	"local n = string.sub(id, 3)\n"
	"redis.call('PUBLISH', ARGV[1], 'M' .. ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. n .. ' ' ..\n"
	"  ARGV[8] .. ' ' .. #ARGV[5] .. ' ' .. #ARGV[6] .. '\\n' .. ARGV[5] .. ARGV[6] .. ARGV[7])\n"
	"return n\n";

/* The id of a stream's newest entry (0: none). */
#define LAST_ID_LUA                                                                   \
	"local function last_id(log)\n"                                               \
	"  local tail = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)\n"         \
	"  if #tail == 0 then return 0 end\n"                                         \
	"  return tonumber(string.sub(tail[1][1], 3))\n"                              \
	"end\n"

/* KEYS: who, log, the node's memberships. ARGV: channel, node, member,
 * user JSON, join event JSON up to its count, list max, room, restore
 * (1: the member may be in already; tell the room only if it was not). */
static const char join_lua[] =
	LAST_ID_LUA
	"local added = redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])\n"
	"redis.call('SADD', KEYS[3], ARGV[7] .. '\\n' .. ARGV[3])\n"
	"local count = redis.call('HLEN', KEYS[1])\n"
	"local last = last_id(KEYS[2])\n"
	"if added == 1 or ARGV[8] ~= '1' then\n"
	"  redis.call('PUBLISH', ARGV[1], 'E' .. ARGV[2] .. ' J ' .. ARGV[3] .. ' ' .. count ..\n"
	"    ' 0\\n' .. ARGV[5] .. count .. '}')\n"
	"end\n"
	"local max = tonumber(ARGV[6])\n"
	"local users = {}\n"
	"if count <= max then\n"
	"  users = redis.call('HVALS', KEYS[1])\n"
	"else\n"
	"  local cursor = '0'\n"
	"  repeat\n"
	"    local page = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', max)\n"
	"    cursor = page[1]\n"
	"    for i = 2, #page[2], 2 do\n"
	"      if #users < max then users[#users + 1] = page[2][i] end\n"
	"    end\n"
	"  until cursor == '0' or #users >= max\n"
	"end\n"
	"return {count, last, '[' .. table.concat(users, ',') .. ']'}\n";

/* KEYS: who, the node's memberships. ARGV: channel, node, member, leave
 * event JSON up to its count, room */
static const char leave_lua[] =
	"local removed = redis.call('HDEL', KEYS[1], ARGV[3])\n"
	"redis.call('SREM', KEYS[2], ARGV[5] .. '\\n' .. ARGV[3])\n"
	"local count = redis.call('HLEN', KEYS[1])\n"
	"if removed == 1 then\n"
	"  redis.call('PUBLISH', ARGV[1], 'E' .. ARGV[2] .. ' L ' .. ARGV[3] .. ' ' .. count ..\n"
	"    ' 0\\n' .. ARGV[4] .. count .. '}')\n"
	"end\n"
	"return count\n";

/* KEYS: each room's who. ARGV: node, member, user JSON, nseq, nick event
 * JSON, the rooms space-separated, then each room's channel */
static const char nick_lua[] =
	"local msg = 'E' .. ARGV[1] .. ' N ' .. ARGV[2] .. ' 0 ' .. ARGV[4] .. '\\n' ..\n"
	"  ARGV[6] .. '\\n' .. ARGV[5]\n"
	"for i, who in ipairs(KEYS) do\n"
	"  if redis.call('HEXISTS', who, ARGV[2]) == 1 then\n"
	"    redis.call('HSET', who, ARGV[2], ARGV[3])\n"
	"  end\n"
	"  redis.call('PUBLISH', ARGV[6 + i], msg)\n"
	"end\n"
	"return 1\n";

/* KEYS: the nodes (a sorted set: node -> when it counts as dead).
 * ARGV: node, timeout ms. A dead node's members leave every room they
 * were in, each room told with its new count. Returns whether this node
 * was missing (new, or taken for dead: its members must be restored). */
static const char heartbeat_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local fresh = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])\n"
	"local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 4)\n"
	"for _, d in ipairs(dead) do\n"
	"  local set = 'ringcast:node:' .. d .. ':rooms'\n"
	"  for _, e in ipairs(redis.call('SMEMBERS', set)) do\n"
	"    local nl = string.find(e, '\\n', 1, true)\n"
	"    local room, member = string.sub(e, 1, nl - 1), string.sub(e, nl + 1)\n"
	"    local who = 'ringcast:room:{' .. room .. '}:who'\n"
	"    local user = redis.call('HGET', who, member)\n"
	"    if user then\n"
	"      redis.call('HDEL', who, member)\n"
	"      local count = redis.call('HLEN', who)\n"
	"      redis.call('PUBLISH', 'ringcast:room:' .. room, 'E' .. d .. ' L ' .. member .. ' ' ..\n"
	"        count .. ' 0\\n{\"type\":\"leave\",\"room\":\"' .. room .. '\",\"user\":' .. user ..\n"
	"        ',\"count\":' .. count .. '}')\n"
	"    end\n"
	"  end\n"
	"  redis.call('DEL', set)\n"
	"  redis.call('ZREM', KEYS[1], d)\n"
	"end\n"
	"return fresh\n";

void cluster_scripts_init(struct cluster_script_text out[SCRIPT_COUNT])
{
	static const char *const lua[SCRIPT_COUNT] = {
		[SCRIPT_POST] = post_lua, [SCRIPT_JOIN] = join_lua, [SCRIPT_LEAVE] = leave_lua,
		[SCRIPT_NICK] = nick_lua, [SCRIPT_HEARTBEAT] = heartbeat_lua,
	};
	for (int i = 0; i < SCRIPT_COUNT; i++) {
		unsigned char md[SHA_DIGEST_LENGTH];
		SHA1((const unsigned char *)lua[i], strlen(lua[i]), md);
		out[i].lua = lua[i];
		for (int k = 0; k < SHA_DIGEST_LENGTH; k++)
			snprintf(out[i].sha1 + 2 * k, 3, "%02x", md[k]);
	}
}
