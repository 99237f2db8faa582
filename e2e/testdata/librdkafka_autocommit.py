"""One generation of a librdkafka consumer with auto-commit, as configured
by default (enable.auto.commit=true, enable.auto.offset.store=true).

Usage: librdkafka_autocommit.py BOOTSTRAP TOPIC GROUP EFFECTS KILL_AFTER

It reads batches with consume(), "processes" each record by appending its
value to EFFECTS (a few milliseconds each, so the auto-commit timer fires
mid-batch), and SIGKILLs itself once it has processed KILL_AFTER records
in total (0: never) and is in the middle of a batch, at the moment the
group's committed offset has passed the record it is on: the timer's
commit of the offsets consume() stored, which is how this setting loses
records. Waiting for that commit instead of guessing its time makes the
kill land mid-batch after a commit on a slow machine too. Without a kill
it stops once no record arrives for three seconds after the first one
(or for thirty before it: joining the group takes the broker's initial
rebalance delay), and closes the consumer, which commits.
"""

import os
import signal
import sys
import time

from confluent_kafka import Consumer, TopicPartition

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
idle_limit = 30
with open(effects, "a") as out:
    while time.monotonic() - idle_since < idle_limit:
        msgs = consumer.consume(num_messages=50, timeout=0.5)
        if not msgs:
            continue
        idle_since = time.monotonic()
        idle_limit = 3
        for i, m in enumerate(msgs):
            if m.error() is not None:
                continue
            time.sleep(0.004)
            out.write(m.value().decode() + "\n")
            out.flush()
            processed += 1
            if kill_after and processed >= kill_after and i < len(msgs) - 1:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    tp = consumer.committed([TopicPartition(topic, m.partition())], timeout=5)[0]
                    if tp.offset > m.offset() + 1:
                        os.kill(os.getpid(), signal.SIGKILL)
                    time.sleep(0.05)
                sys.exit("the auto-commit timer did not commit within 20 s")
consumer.close()
