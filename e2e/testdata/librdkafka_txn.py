"""Runs Kafka transactions against a broker with librdkafka (confluent_kafka).

Usage: librdkafka_txn.py BOOTSTRAP TOPIC

The topic must exist with 3 partitions. One transactional producer commits
committed-0..9, aborts aborted-0..9, then commits committed-10..19, each
spread over the three partitions. A read_committed consumer group then reads
the topic and prints every value it sees on its own line; a read_uncommitted
consumer reads it again and prints every value prefixed with "uncommitted: ".
Any error (a failed delivery, a client error, a timeout before every expected
value is seen) is written to stderr and the exit status is non-zero.
"""

import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

PARTITIONS = 3
TIMEOUT_S = 60


class Failed(Exception):
    pass


def on_error(err):
    # Every client-level error fails the run: a broker that behaves has
    # nothing to report here while it is up.
    raise Failed("client error: %s" % err)


def produce_txn(producer, topic, prefix, first, last, commit):
    failed = []

    def on_delivery(err, msg):
        if err is not None:
            failed.append("%s: %s" % (msg.value().decode(), err))

    producer.begin_transaction()
    for i in range(first, last):
        producer.produce(topic, value="%s-%d" % (prefix, i), partition=i % PARTITIONS,
                         on_delivery=on_delivery)
    # Deliver every record before ending the transaction: abort_transaction
    # purges what is still queued, and the aborted records must reach the
    # broker for read_uncommitted to see them.
    if producer.flush(TIMEOUT_S) != 0:
        raise Failed("%s: records still undelivered after %ds" % (prefix, TIMEOUT_S))
    if failed:
        raise Failed("delivery failed: %s" % failed)
    if commit:
        producer.commit_transaction(TIMEOUT_S)
    else:
        producer.abort_transaction(TIMEOUT_S)


def read(bootstrap, topic, isolation, group, want):
    """Reads topic from its start until every value in want is seen."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "isolation.level": isolation,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "error_cb": on_error,
    })
    seen = []
    try:
        if isolation == "read_committed":
            consumer.subscribe([topic])  # through the group protocol
        else:
            consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        deadline = time.monotonic() + TIMEOUT_S
        while not want <= set(seen):
            if time.monotonic() > deadline:
                raise Failed("%s: saw %s after %ds, missing %s"
                             % (isolation, seen, TIMEOUT_S, sorted(want - set(seen))))
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise Failed("%s: consume: %s" % (isolation, msg.error()))
            seen.append(msg.value().decode())
    finally:
        consumer.close()
    return seen


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": "py-txn",
        "error_cb": on_error,
    })
    producer.init_transactions(TIMEOUT_S)
    produce_txn(producer, topic, "committed", 0, 10, commit=True)
    produce_txn(producer, topic, "aborted", 0, 10, commit=False)
    produce_txn(producer, topic, "committed", 10, 20, commit=True)

    committed = {"committed-%d" % i for i in range(20)}
    aborted = {"aborted-%d" % i for i in range(10)}
    for v in read(bootstrap, topic, "read_committed", "py-txn-reader", committed):
        print(v, flush=True)
    for v in read(bootstrap, topic, "read_uncommitted", "py-txn-uncommitted", committed | aborted):
        print("uncommitted: " + v, flush=True)


if __name__ == "__main__":
    try:
        main()
    except (Failed, KafkaException) as e:
        print("librdkafka_txn: %s" % e, file=sys.stderr)
        sys.exit(1)
