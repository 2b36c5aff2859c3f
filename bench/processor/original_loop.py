"""A faithful Python port of the original system's per-message stream consumer, for the
processor benchmark (run by `processor-bench`, which prints the side-by-side figures).

The original consumed one Kafka message at a time, transformed the session in Python
(timestamp parts, the ten isViewedProduct flags, one row per viewed product with the VADER
sentiment of its review, the potential-customer signal) and issued one Elasticsearch `index`
call per document. Here that per-record transform is kept as it was, producing the same
fields as the Rust processor, and the `index` call goes to a counting sink (it serialises the
document, as the client would, and counts) or, with `--sink es`, to real per-document HTTP
index requests.

Modes:
  --source memory --input sessions.jsonl   records from a file, read into memory first
  --source kafka --topic T --group G       records from Kafka (confluent-kafka, per message)
Prints one JSON line: {"sessions", "docs", "seconds", "sessions_per_s", "cpu_seconds",
"sessions_per_cpu_s"} (CPU time of the consuming thread, which stays meaningful on a shared
machine).
"""
import argparse
import json
import sys
import time
from datetime import datetime

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

ANALYZER = SentimentIntensityAnalyzer()
POTENTIAL_CUSTOMER_SECONDS = 180
DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def part_of_day(hour):
    if hour < 6:
        return "night"
    if hour < 12:
        return "morning"
    if hour < 18:
        return "afternoon"
    return "evening"


def label(compound):
    if compound >= 0.05:
        return "positive"
    if compound <= -0.05:
        return "negative"
    return "neutral"


def transform(session):
    """The original per-session transform: one summary and one row per viewed product."""
    ts = datetime.strptime(session["sessionTimestamp"], "%Y-%m-%dT%H:%M:%S")
    iso = ts.isocalendar()
    viewed = set(session["browsingPattern"])
    total_time = sum(session["timeSpentonEachPage"])
    categories = []
    for c in session["productCategories"]:
        if c not in categories:
            categories.append(c)
    rows = []
    counts = {"positive": 0, "neutral": 0, "negative": 0}
    compound_sum = 0.0
    for i, pid in enumerate(session["productIds"]):
        review = session["productReviews"][i]
        row = {
            "sessionId": session["sessionId"],
            "userId": session["userId"],
            "position": i + 1,
            "productId": pid,
            "productName": session["productNames"][i],
            "price": session["productPrices"][i],
            "category": session["productCategories"][i],
            "timeOnPage": session["timeSpentonEachPage"][i],
        }
        if review is not None:
            compound = ANALYZER.polarity_scores(review)["compound"]
            row["review"] = review
            row["reviewSentiment"] = label(compound)
            row["reviewCompound"] = compound
            counts[label(compound)] += 1
            compound_sum += compound
        row.update({
            "action": session["actions"],
            "purchaseMade": session["purchaseMade"],
            "revenue": session["productPrices"][i] if session["purchaseMade"] else 0,
            "isExitPage": session["productNames"][i] == session["exitPage"],
            "referrer": session["referrer"],
            "deviceType": session["deviceInformation"]["deviceType"],
            "timestamp": session["sessionTimestamp"],
        })
        rows.append(row)
    summary = {
        "sessionId": session["sessionId"],
        "userId": session["userId"],
        "timestamp": session["sessionTimestamp"],
        "hour": ts.hour,
        "dayOfWeek": ts.isoweekday(),
        "dayName": DAY_NAMES[ts.weekday()],
        "isWeekend": ts.weekday() >= 5,
        "month": ts.month,
        "isoWeek": iso[1],
        "isoYear": iso[0],
        "partOfDay": part_of_day(ts.hour),
    }
    for pid in range(1, 11):
        summary["isViewedProduct%d" % pid] = pid in viewed
    n_reviews = sum(counts.values())
    summary.update({
        "productIds": session["productIds"],
        "categories": categories,
        "sessionDuration": session["sessionDuration"],
        "pageViews": session["pageViews"],
        "clicks": session["clicks"],
        "totalTimeOnPages": total_time,
        "referrer": session["referrer"],
        "deviceType": session["deviceInformation"]["deviceType"],
        "gender": session["gender"],
        "country": session["locationData"]["country"],
        "state": session["locationData"]["state"],
        "action": session["actions"],
        "exitPage": session["exitPage"],
        "purchaseMade": session["purchaseMade"],
        "amountSpent": session["amountSpent"],
        "paymentMethod": session["paymentMethodType"],
        "reviewCount": n_reviews,
        "positiveReviews": counts["positive"],
        "neutralReviews": counts["neutral"],
        "negativeReviews": counts["negative"],
        "potentialCustomer": (not session["purchaseMade"]) and total_time >= POTENTIAL_CUSTOMER_SECONDS,
    })
    if n_reviews:
        summary["avgReviewCompound"] = round(compound_sum / n_reviews, 4)
    return summary, rows


class CountingSink:
    """Stands in for `es.index(index=..., id=..., document=...)`: serialises and counts."""

    def __init__(self):
        self.docs = 0
        self.bytes = 0

    def index(self, index, doc_id, document):
        body = json.dumps(document)
        self.docs += 1
        self.bytes += len(body) + len(index) + len(doc_id)


class HttpSink:
    """One real HTTP index request per document, as the original's client made."""

    def __init__(self, url):
        import requests

        self.session = requests.Session()
        self.url = url.rstrip("/")
        self.docs = 0

    def index(self, index, doc_id, document):
        from urllib.parse import quote

        r = self.session.put(
            "%s/%s/_doc/%s" % (self.url, index, quote(doc_id, safe="")),
            data=json.dumps(document),
            headers={"Content-Type": "application/json"},
        )
        r.raise_for_status()
        self.docs += 1


def handle(value, sink, prefix):
    session = json.loads(value)
    summary, rows = transform(session)
    sink.index(prefix + "sessions", session["sessionId"], summary)
    for row in rows:
        sink.index(prefix + "products", "%s:%d" % (session["sessionId"], row["position"]), row)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", choices=["memory", "kafka"], required=True)
    ap.add_argument("--input")
    ap.add_argument("--topic")
    ap.add_argument("--group")
    ap.add_argument("--bootstrap")
    ap.add_argument("--limit", type=int, required=True)
    ap.add_argument("--sink", choices=["count", "es"], default="count")
    ap.add_argument("--es-url")
    ap.add_argument("--prefix", default="pybench-")
    a = ap.parse_args()
    sink = CountingSink() if a.sink == "count" else HttpSink(a.es_url)
    done = 0
    if a.source == "memory":
        with open(a.input, "rb") as f:
            values = [line for _, line in zip(range(a.limit), f)]
        start = time.perf_counter()
        cpu_start = time.thread_time()
        for value in values:
            handle(value, sink, a.prefix)
            done += 1
        seconds = time.perf_counter() - start
        cpu = time.thread_time() - cpu_start
    else:
        from confluent_kafka import Consumer

        consumer = Consumer({
            "bootstrap.servers": a.bootstrap,
            "group.id": a.group,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        })
        consumer.subscribe([a.topic])
        start = None
        while done < a.limit:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            if start is None:
                start = time.perf_counter()
                cpu_start = time.process_time()
            handle(msg.value(), sink, a.prefix)
            done += 1
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        consumer.close()
    print(json.dumps({"sessions": done, "docs": sink.docs, "seconds": seconds,
                      "sessions_per_s": done / seconds if seconds > 0 else 0.0,
                      "cpu_seconds": cpu,
                      "sessions_per_cpu_s": done / cpu if cpu > 0 else 0.0}))


if __name__ == "__main__":
    sys.exit(main())
