"""Produces and consumes with librdkafka (confluent_kafka) while a test
kills the partition's leader.

Usage: leader_change.py BOOTSTRAP TOPIC COUNT

An idempotent acks=all producer writes COUNT records (values "py-0",
"py-1", ...) to partition 0 of TOPIC, one every 5 ms, and a consumer
assigned to partition 0 reads from the start at the same time. Every
delivery report is printed as "delivered VALUE OFFSET" or "failed VALUE
ERROR", every record read as "consumed VALUE OFFSET", each line flushed at
once so the test can follow. Once the producer is flushed, the consumer
reads until it has seen every delivered value or 30 s pass; then "done".
Errors the client reports are printed as "error ..." lines; they are
expected while a broker is down.
"""

import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition


def main():
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    delivered = set()
    consumed = set()

    def on_error(err):
        print("error %s" % err, flush=True)

    def on_delivery(err, msg):
        value = msg.value().decode()
        if err is not None:
            print("failed %s %s" % (value, err), flush=True)
            return
        delivered.add(value)
        print("delivered %s %d" % (value, msg.offset()), flush=True)

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "message.timeout.ms": 45000,
        "error_cb": on_error,
    })
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "leader-change-reader",
        "enable.auto.commit": False,
        "error_cb": on_error,
    })
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])

    def consume(timeout):
        msg = consumer.poll(timeout)
        if msg is None:
            return
        if msg.error():
            print("error consume: %s" % msg.error(), flush=True)
            return
        value = msg.value().decode()
        consumed.add(value)
        print("consumed %s %d" % (value, msg.offset()), flush=True)

    for i in range(count):
        producer.produce(topic, value=("py-%d" % i).encode(), partition=0, on_delivery=on_delivery)
        producer.poll(0)
        consume(0.005)
    left = producer.flush(50)
    if left:
        print("error %d records still unanswered after the flush" % left, flush=True)
    deadline = time.time() + 30
    while not delivered <= consumed and time.time() < deadline:
        consume(0.1)
    consumer.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
