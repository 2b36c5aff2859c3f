"""Faithful Python port of the original system's per-message security-gate consumer loop.

This is the reference the Rust gate is benchmarked against (never used at run time). Like the
original, it handles one message at a time: poll one record from Kafka, decode the JSON, ask
Redis about the user with one command per question (BF.EXISTS, then BF.ADD for users that pass,
PFADD for the unique-user HyperLogLog, INCR for the per-user session count), produce the record
to the valid or suspicious topic, and poll the producer. Offsets are auto-committed, as in the
original (which is exactly why the original was not replay-safe).

Usage (the Rust bench binary runs it; it prints one JSON line with its measurement):
  python python_gate.py --bootstrap HOST:PORT --redis-url redis://... --input T --valid T \
      --suspicious T --prefix P --count N
"""

import argparse
import json
import resource
import sys
import time

import redis
from confluent_kafka import Consumer, Producer


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--valid", required=True)
    ap.add_argument("--suspicious", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()

    r = redis.Redis.from_url(args.redis_url)
    bloom = f"{args.prefix}:bloom"
    hll = f"{args.prefix}:users"
    try:
        r.execute_command("BF.RESERVE", bloom, 0.001, 1_000_000)
    except redis.ResponseError:
        pass  # already exists

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    })
    producer = Producer({"bootstrap.servers": args.bootstrap})
    consumer.subscribe([args.input])

    seen = valid = suspicious = failed = 0
    started = None
    deadline = time.monotonic() + args.timeout
    while seen < args.count and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            print(f"consumer error: {msg.error()}", file=sys.stderr)
            continue
        if started is None:
            started = time.perf_counter()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu_started = usage.ru_utime + usage.ru_stime
        seen += 1
        try:
            session = json.loads(msg.value())
            user_id = session["userId"]
            device = session["deviceInformation"]["deviceType"]
            referrer = session["referrer"]
        except (ValueError, KeyError, TypeError):
            failed += 1
            continue
        known = r.execute_command("BF.EXISTS", bloom, user_id)
        if not known and (device == "unknown" or referrer == "unknown"):
            producer.produce(args.suspicious, key=user_id, value=json.dumps(session))
            suspicious += 1
        else:
            r.execute_command("BF.ADD", bloom, user_id)
            producer.produce(args.valid, key=user_id, value=json.dumps(session))
            valid += 1
        r.pfadd(hll, user_id)
        r.incr(f"{args.prefix}:sessions:{user_id}")
        producer.poll(0)
    producer.flush(30)
    elapsed = time.perf_counter() - started if started is not None else float("nan")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu_started if started is not None else float("nan")
    consumer.close()
    print(json.dumps({
        "records": seen,
        "valid": valid,
        "suspicious": suspicious,
        "failed": failed,
        "seconds": elapsed,
        "per_second": seen / elapsed if seen and elapsed > 0 else 0.0,
        "cpu_seconds": cpu,
        "per_cpu_second": seen / cpu if seen and cpu > 0 else 0.0,
    }))
    return 0 if seen >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
