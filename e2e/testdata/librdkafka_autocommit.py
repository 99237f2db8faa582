"""One generation of a librdkafka consumer with auto-commit, as configured
by default (enable.auto.commit=true, enable.auto.offset.store=true).

Usage: librdkafka_autocommit.py BOOTSTRAP TOPIC GROUP EFFECTS KILL_AFTER

It reads batches with consume(), "processes" each record by appending its
value to EFFECTS (a few milliseconds each, so the auto-commit timer fires
mid-batch), and SIGKILLs itself after processing KILL_AFTER records in
total (0: never). Without a kill it stops once no record arrives for three
seconds, and closes the consumer, which commits.
"""

import os
import signal
import sys
import time

from confluent_kafka import Consumer

bootstrap, topic, group, effects, kill_after = sys.argv[1:6]
kill_after = int(kill_after)

consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "group.instance.id": group + "-worker",
    "session.timeout.ms": 6000,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": True,
    "auto.commit.interval.ms": 100,
})
consumer.subscribe([topic])
processed = 0
idle_since = time.monotonic()
with open(effects, "a") as out:
    while time.monotonic() - idle_since < 3:
        msgs = consumer.consume(num_messages=50, timeout=0.5)
        if not msgs:
            continue
        idle_since = time.monotonic()
        for m in msgs:
            if m.error() is not None:
                continue
            time.sleep(0.004)
            out.write(m.value().decode() + "\n")
            out.flush()
            processed += 1
            if processed == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
consumer.close()
