#!/usr/bin/env python3
"""Example Berth workflow: summarise a bundled feed of fictional items.

For every item of feed.json (next to this file, or BERTH_EXAMPLE_FEED) it
reserves one "digest" action through the agent, builds the digest locally
(first sentence, word count, keywords), stores it on the tenant volume under
/data/digests/, and reports the result. When the day's quota is used up the
agent denies the reservation and the item is skipped without being touched.

It never contacts any network service but the agent on loopback. Standard
library only; replace digest() with your own code.

Config (the start request's "config" over the manifest defaults):
  digests_per_day  cap on digests today (enforced by the agent, not here)
  pace_ms          pause between items, milliseconds (default 0)
  limit            process at most this many items (default: all)
"""

import collections
import json
import os
import re
import signal
import sys
import time

import berth_workload as bw

ACTION = "digest"
STOPWORDS = set("a an and the of to in on for by from with after as at is are was were be been will "
                "their its it this that next new also again said one two three four".split())


def log(event, **fields):
    """One JSON log line on stderr (stdout JSON lines with "action" would be recorded as actions)."""
    print(json.dumps(dict(event=event, **fields), sort_keys=True), file=sys.stderr, flush=True)


def digest(item):
    """The local "work": a short digest of one item."""
    body = item["body"]
    first = re.split(r"(?<=[.!?])\s+", body.strip(), maxsplit=1)[0]
    words = re.findall(r"[a-z']+", body.lower())
    common = collections.Counter(w for w in words if w not in STOPWORDS and len(w) > 3)
    return {
        "id": item["id"],
        "title": item["title"],
        "lead": first,
        "words": len(words),
        "keywords": [w for w, _ in common.most_common(3)],
    }


def store(out_dir, d):
    """Write a digest atomically; /data is the tenant's persistent volume."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, d["id"] + ".json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(d, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def main():
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    client = bw.Client.from_env()
    cfg = client.config()
    pace = float(cfg.get("pace_ms", 0)) / 1000.0
    feed_path = os.environ.get("BERTH_EXAMPLE_FEED") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "feed.json")
    out_dir = os.environ.get("BERTH_EXAMPLE_OUT") or "/data/digests"
    with open(feed_path, encoding="utf-8") as f:
        items = json.load(f)["items"]
    if cfg.get("limit") is not None:
        items = items[: int(cfg["limit"])]

    log("start", workflow=os.environ.get("BERTH_WORKFLOW", ""), items=len(items), python=sys.version.split()[0])
    done = denied = failed = 0
    for item in items:
        if stopping:
            log("stopping", reason="SIGTERM")
            break
        try:
            res = client.reserve(ACTION)
        except bw.Denied as d:
            denied += 1
            log("denied", item=item["id"], reason=d.reason)
            continue
        try:
            d = digest(item)
            path = store(out_dir, d)
        except Exception as e:  # report the failure, go on with the next item
            failed += 1
            client.report(res, item["id"], False, {"error": str(e)})
            log("failed", item=item["id"], error=str(e))
            continue
        seq = client.report(res, item["id"], True, {"path": path, "words": d["words"], "keywords": d["keywords"]})
        done += 1
        log("digested", item=item["id"], seq=seq, remaining=res.remaining)
        if pace:
            time.sleep(pace)
    log("summary", digested=done, denied=denied, failed=failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
