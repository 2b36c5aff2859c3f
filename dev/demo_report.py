"""Waits until the demo's workloads have caught up, then prints what landed where.

Reads the workloads' Prometheus endpoints to know when they are done, then counts every topic
(with `shopstream summarize`), the Elasticsearch indexes, the MongoDB collection and the
gate's Redis counters (HyperLogLog vs the exact number of users).
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

import pymongo
import redis


def metric(addr, name):
    """Sum of a Prometheus metric's samples (all labels) on a workload's /metrics."""
    try:
        body = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def summarize(binary, topic):
    out = subprocess.run([binary, "summarize", "--topic", topic, "--idle-seconds", "3", "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def es_count(index):
    url = f"{os.environ['SHOPSTREAM_ES_URL']}/{index}/_count"
    try:
        return json.load(urllib.request.urlopen(url, timeout=10))["count"]
    except OSError:
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, help="prefix of the topic names")
    # where the workloads write: named after the run locally, derived by the operator in a cluster
    ap.add_argument("--index-prefix", help="Elasticsearch index prefix [default: RUN-]")
    ap.add_argument("--db", help="MongoDB database [default: RUN]")
    ap.add_argument("--redis-prefix", help="the gate's Redis key prefix [default: RUN]")
    ap.add_argument("--sessions", type=int, required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--timeout", type=int, default=600)
    a = ap.parse_args()
    index_prefix = a.index_prefix or f"{a.run}-"
    db = a.db or a.run
    redis_prefix = a.redis_prefix or a.run
    env = os.environ
    gate, proc, sink = (env["DEMO_METRICS_GATE"], env["DEMO_METRICS_PROCESS"], env["DEMO_METRICS_SINK"])
    deadline = time.time() + a.timeout
    start = time.time()
    while True:
        gate_in = metric(gate, "shopstream_gate_records_in_total") or 0
        valid = metric(gate, 'shopstream_gate_records_out_total{output="valid"}')
        valid = valid if valid is not None else 0
        proc_in = metric(proc, "shopstream_processor_records_in_total") or 0
        sink_in = metric(sink, "shopstream_sink_records_in_total") or 0
        print(f"  gate in {gate_in:.0f}/{a.sessions}, processor in {proc_in:.0f}, sink in {sink_in:.0f}",
              file=sys.stderr)
        if gate_in >= a.sessions and proc_in >= valid > 0 and sink_in >= valid:
            break
        if time.time() > deadline:
            sys.exit(f"workloads did not catch up within {a.timeout}s")
        time.sleep(2)
    time.sleep(3)  # last bulk writes and commits
    took = time.time() - start

    topics = {t: summarize(a.bin, f"{a.run}.{t}") for t in ("raw", "valid", "suspicious", "dead-letter")}
    mongo = pymongo.MongoClient(env["SHOPSTREAM_MONGO_URL"])
    mongo_count = mongo[db]["user_sessions"].count_documents({})
    r = redis.Redis.from_url(env["SHOPSTREAM_REDIS_URL"])
    hll = r.pfcount(f"{{{redis_prefix}}}:users")
    per_user = r.hgetall(f"{{{redis_prefix}}}:sessions-per-user")
    exact_users = topics["raw"]["uniqueUsers"]

    print(f"\nrun {a.run}: {a.sessions} sessions through the pipeline in {took:.1f}s after generation\n")
    print(f"{'where':<56}{'records':>10}")
    for t, s in topics.items():
        print(f"{'kafka topic ' + a.run + '.' + t:<56}{s['records']:>10}")
    for idx in ("sessions", "products"):
        name = f"{index_prefix}{idx}"
        print(f"{'elasticsearch index ' + name:<56}{es_count(name):>10}")
    print(f"{'mongodb ' + db + '.user_sessions':<56}{mongo_count:>10}")
    print(f"\nunique users: HyperLogLog {hll}, exact {exact_users} "
          f"({100.0 * (hll - exact_users) / max(exact_users, 1):+.2f}%)")
    print(f"sessions counted per user in Redis: {sum(int(v) for v in per_user.values())} "
          f"(valid + suspicious sessions: {topics['valid']['records'] + topics['suspicious']['records']})")
    print(f"purchases among valid sessions: {topics['valid']['purchases']} "
          f"({100.0 * topics['valid']['purchases'] / max(topics['valid']['valid'], 1):.1f}%), "
          f"revenue {topics['valid']['revenue']}")


if __name__ == "__main__":
    main()
