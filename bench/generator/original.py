"""A faithful Python port of the original system's session generator loop (the reference for
bench/generator/run.sh). Per session it does what the original did: Faker for the person, the
location, the user agents and the IP, random choices of products and actions, json.dumps, then
one producer call per message (kafka-python style; here confluent-kafka, which is faster) or one
file write. Purchases are a coin flip, as in the original.

usage: original.py --count N (--output FILE | --topic TOPIC --bootstrap HOST:PORT)
"""
import argparse
import json
import random
import sys
import time
import uuid
from datetime import datetime, timedelta

from faker import Faker

PRODUCTS = {
    1: ("sofa", 5000, "living room"), 2: ("coffee table", 500, "living room"),
    3: ("accent chair", 750, "living room"), 4: ("bed", 4500, "bedroom"),
    5: ("bedside table", 590, "bedroom"), 6: ("dresser", 1290, "bedroom"),
    7: ("office desk", 1150, "office"), 8: ("office chair", 899, "office"),
    9: ("dining table", 2500, "dining room"), 10: ("dining chairs", 650, "dining room"),
}
SETS = [[9, 10], [1, 2, 3], [4, 5, 6], [7, 8]]
REVIEWS = ["This {} is incredibly sturdy and was easy to assemble.",
           "A standard {}, nothing special but works.",
           "Drawers of the {} stick and it was a pain to put together."]
fake = Faker()


def session():
    if random.random() < 0.5:
        chosen = random.choice(SETS)
        pattern = random.sample(chosen, k=random.randint(2, len(chosen)))
    else:
        pattern = random.sample(list(PRODUCTS), k=random.randint(1, 5))
    purchase = random.choice([True, False])
    names = [PRODUCTS[p][0] for p in pattern]
    prices = [PRODUCTS[p][1] for p in pattern]
    times = [random.randint(5, 300) for _ in pattern]
    return {
        "sessionId": str(uuid.uuid4()),
        "userId": str(uuid.uuid4()),
        "sessionTimestamp": (datetime(2026, 11, 1) + timedelta(seconds=random.randint(0, 2_592_000))).strftime("%Y-%m-%dT%H:%M:%S"),
        "productIds": pattern,
        "productNames": names,
        "productPrices": prices,
        "productCategories": [PRODUCTS[p][2] for p in pattern],
        "productReviews": [random.choice(REVIEWS).format(n) for n in names] if purchase else [None] * len(pattern),
        "name": fake.name(),
        "gender": random.choice(["Male", "Female", "Other"]),
        "email": fake.email(),
        "deviceInformation": {"deviceType": random.choice(["mobile", "desktop", "tablet", "unknown"]),
                              "operatingSystem": fake.user_agent(), "browserType": fake.user_agent()},
        "locationData": {"country": "United States", "state": fake.state(), "city": fake.city(),
                         "zipCode": fake.zipcode()},
        "ipAddress": fake.ipv4(),
        "sessionDuration": sum(times) + random.randint(5, 90),
        "pageViews": len(pattern),
        "browsingPattern": pattern,
        "timeSpentonEachPage": times,
        "clicks": random.randint(1, 50),
        "actions": "checkout" if purchase else random.choice(["add_to_cart", "search", "view_item"]),
        "referrer": random.choice(["Google", "Facebook", "Instagram", "WorldMarket", "Direct", "unknown"]),
        "exitPage": random.choice(names),
        "purchaseMade": purchase,
        "amountSpent": sum(prices) if purchase else 0,
        "paymentMethodType": random.choice(["CreditCard", "PayPal"]) if purchase else "None",
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--output")
    ap.add_argument("--topic")
    ap.add_argument("--bootstrap")
    a = ap.parse_args()
    random.seed(7)
    Faker.seed(7)
    start = time.perf_counter()
    if a.output:
        with open(a.output, "w") as f:
            for _ in range(a.count):
                s = session()
                f.write(json.dumps(s) + "\n")
    else:
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": a.bootstrap, "enable.idempotence": True, "acks": "all",
                      "linger.ms": 5, "queue.buffering.max.messages": 1_000_000})
        for _ in range(a.count):
            s = session()
            p.produce(a.topic, key=s["userId"], value=json.dumps(s))
            p.poll(0)
        p.flush(120)
    secs = time.perf_counter() - start
    print(json.dumps({"sessions": a.count, "seconds": secs, "per_second": a.count / secs}))


if __name__ == "__main__":
    sys.exit(main())
