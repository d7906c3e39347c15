"""Measure the CSV export in a process of its own: rows/s and peak RSS (``python -m bench.export_probe``).

Prints one JSON line: {"rows": n, "seconds": s, "rss_before_mb": x, "peak_rss_mb": y}.
"""

import json
import resource
import sys
import time

from .db import setup_django


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def main() -> None:
    email, limit = sys.argv[1], int(sys.argv[2])
    query = sys.argv[3] if len(sys.argv) > 3 else ""
    setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    settings.ROOT_URLCONF = "bench.urls"
    client = Client()
    client.force_login(get_user_model().objects.get(email=email))
    before = rss_mb()
    t0 = time.perf_counter()
    response = client.get(f"/activities/export.csv?{query}")
    rows = -1  # header
    for chunk in response.streaming_content:
        rows += chunk.count(b"\n")
        if rows >= limit:
            break
    seconds = time.perf_counter() - t0
    print(json.dumps({"rows": rows, "seconds": seconds, "rss_before_mb": before, "peak_rss_mb": rss_mb()}))


if __name__ == "__main__":
    main()
