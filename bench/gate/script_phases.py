"""Server time per session of each phase of the gate's Redis script (gate.lua), on Redis alone.

A profiling aid, not a test. It copies the script, inserts a `redis.call('TIME')` before each
phase (found by the phase comments of gate.lua; it stops with an error if one is missing),
makes the copy return those times instead of the verdicts, and calls it with generated
sessions in batches, the way the gate does (keys, arguments and tags as
`shopstream_gate::state::BatchEncoder` builds them), on a fresh key prefix that it deletes at
the end. It prints microseconds of server time per session for each phase and in all.

  shopstream generate --seed 99 --users 20000 --count 150000 --output /tmp/sessions.jsonl
  eval "$(dev/stack env)"
  taskset -c 1 .venv/bin/python bench/gate/script_phases.py --sessions /tmp/sessions.jsonl

`--script FILE` times another version of the script (it must keep the phase comments).
Redis's own timing varies by about 20 % from run to run on a shared VM: run each version
several times, alternating.
"""

import argparse
import json
import os
import sys
import uuid

import redis

# Each phase starts at the first line beginning with its marker.
PHASES = [
    ("type checks", "local ttl = tonumber(ARGV[1])"),
    ("recorded verdicts (HMGET)", "-- Session i's values are"),
    ("duplicates", "-- New sessions: the first"),
    ("Bloom lookups (BF.MEXISTS)", "-- Bloom membership of those users"),
    ("decisions", "-- Decide in order;"),
    ("Bloom writes (BF.RESERVE/BF.MADD)", "-- Writes."),
    ("per-user counts (HINCRBY)", "-- A user whose count starts now"),
    ("HyperLogLog (PFADD)", "if #pf_list > 0 then chunked('PFADD'"),
    ("verdict writes (HSET/EXPIRE)", "for k, list in pairs(writes) do"),
]
TICK = (
    "local __T = {}\n"
    "local function __tick() local t = redis.call('TIME')\n"
    "  __T[#__T + 1] = tonumber(t[1]) * 1000000 + tonumber(t[2]) end\n"
)


def instrument(source: str) -> str:
    lines = source.split("\n")
    out = []
    pending = list(PHASES)
    for line in lines:
        if pending and line.startswith(pending[0][1]):
            if len(pending) == len(PHASES):
                out.append(TICK)
            out.append("__tick()")
            pending.pop(0)
        if line.strip() == "return out":
            out.append("__tick()")
            out.append("return __T")
            continue
        out.append(line)
    if pending:
        sys.exit(f"phase marker not found in the script: {pending[0][1]!r}")
    if "return __T" not in out:
        sys.exit("the script's final 'return out' was not found")
    return "\n".join(out)


def risk_bits(d: dict) -> int:
    device = d["deviceInformation"]["deviceType"] == "unknown"
    referrer = d["referrer"] == "unknown"
    return (1 if device else 0) + (2 if referrer else 0)


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", required=True, help="JSON lines from `shopstream generate`")
    ap.add_argument("--script", default=os.path.join(here, "../../workloads/gate/src/gate.lua"))
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--redis-url", default=os.environ.get("SHOPSTREAM_REDIS_URL"))
    args = ap.parse_args()
    if not args.redis_url:
        sys.exit("--redis-url or SHOPSTREAM_REDIS_URL is needed (eval \"$(dev/stack env)\")")

    with open(args.script) as f:
        lua = instrument(f.read())
    sessions = []
    with open(args.sessions) as f:
        for line in f:
            d = json.loads(line)
            day = d["sessionTimestamp"][:10]
            sessions.append((d["sessionId"], d["userId"], risk_bits(d), day))
    if not sessions:
        sys.exit("no sessions")

    r = redis.Redis.from_url(args.redis_url)
    sha = r.script_load(lua)
    prefix = "script-phases:" + uuid.uuid4().hex[:8]
    totals = [0] * len(PHASES)
    try:
        for i in range(0, len(sessions), args.batch):
            batch = sessions[i : i + args.batch]
            days = []
            for s in batch:
                if s[3] not in days:
                    days.append(s[3])
            keys = [f"{{{prefix}}}:bloom", f"{{{prefix}}}:users", f"{{{prefix}}}:sessions-per-user"]
            keys += [f"{{{prefix}}}:verdicts:{d}" for d in days]
            argv = [3600, 0.001, 1_000_000, len(batch)]
            for sid, uid, risk, day in batch:
                argv += [sid, uid, 4 * days.index(day) + risk]
            ticks = r.evalsha(sha, len(keys), *keys, *argv)
            for j in range(len(PHASES)):
                totals[j] += ticks[j + 1] - ticks[j]
    finally:
        for key in r.scan_iter(f"{{{prefix}}}:*", count=1000):
            r.delete(key)
    n = len(sessions)
    for (name, _), t in zip(PHASES, totals):
        print(f"{name:36s} {t / n:6.2f} us/session")
    print(f"{'all':36s} {sum(totals) / n:6.2f} us/session ({n} sessions, batches of {args.batch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
