"""Reference scores from vaderSentiment 3.3.2 for the Rust port's agreement test.

Usage: python vader_reference.py IN.json OUT.json
IN.json is a JSON list of strings; OUT.json receives one [neg, neu, pos, compound] per string,
exactly as SentimentIntensityAnalyzer().polarity_scores returns them.
"""
import json
import sys
from importlib.metadata import version

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        texts = json.load(f)
    analyzer = SentimentIntensityAnalyzer()
    out = []
    for text in texts:
        s = analyzer.polarity_scores(text)
        out.append([s["neg"], s["neu"], s["pos"], s["compound"]])
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump({"version": version("vaderSentiment"), "scores": out}, f)


if __name__ == "__main__":
    main()
