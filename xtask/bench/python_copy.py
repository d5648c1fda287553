"""The consume-to-produce loop many users write instead of a replicator, as the benchmark's
peer: confluent-kafka, one poll per record, same partition, key, value, headers and timestamp,
the same delivery guarantee as mirrorcast (idempotent, acks=all). Copies `count` records and waits
until the target acknowledged them, then prints the seconds it took as JSON.

usage: python_copy.py SOURCE_BOOTSTRAP TARGET_BOOTSTRAP TOPIC TARGET_TOPIC COUNT
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer


def main():
    source, target, topic, target_topic = sys.argv[1:5]
    count = int(sys.argv[5])
    consumer = Consumer(
        {
            "bootstrap.servers": source,
            "group.id": "bench-python-copy",
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": target,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    acked = 0
    failed = 0
    copied = 0

    def delivered(err, _msg):
        nonlocal acked, failed
        if err is None:
            acked += 1
        else:
            failed += 1

    consumer.subscribe([topic])
    started = time.monotonic()
    while copied < count:
        msg = consumer.poll(0.1)
        if msg is None:
            producer.poll(0)
            continue
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                print(msg.error(), file=sys.stderr)
            continue
        while True:
            try:
                producer.produce(
                    target_topic,
                    key=msg.key(),
                    value=msg.value(),
                    headers=msg.headers(),
                    partition=msg.partition(),
                    timestamp=msg.timestamp()[1],
                    on_delivery=delivered,
                )
                break
            except BufferError:
                producer.poll(0.05)
        copied += 1
        producer.poll(0)
        if failed:
            sys.exit(f"{failed} deliveries failed")
    producer.flush()
    if acked != count:
        sys.exit(f"{acked} of {count} records acknowledged")
    seconds = time.monotonic() - started
    consumer.close()
    print(json.dumps({"seconds": seconds, "records": acked}))


if __name__ == "__main__":
    main()
