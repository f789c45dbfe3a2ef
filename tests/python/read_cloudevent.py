#!/usr/bin/env python3
"""Read one Kafka record with confluent-kafka and parse it with the CloudEvents SDK.

usage: read_cloudevent.py BOOTSTRAP TOPIC PARTITION OFFSET [TIMEOUT_SECONDS]

Prints one JSON object: specversion, id, type, source, time, datacontenttype, dataschema,
extensions (every other CloudEvents attribute), data (the parsed JSON payload),
key, and headers (all Kafka headers as text, to check what the SDK was given).
Exits non-zero with a message on stderr if the record is not read in time (30 s).
"""
import json
import sys
import time

from cloudevents.v1.kafka import KafkaMessage, from_binary
from confluent_kafka import Consumer, TopicPartition

CORE = {"specversion", "id", "source", "type", "time", "datacontenttype", "dataschema"}


def read_one(bootstrap, topic, partition, offset, timeout):
    # assign() reads exactly this partition from this offset; nothing is committed.
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "mekong-interop-reader",
        "enable.auto.commit": False,
    })
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = consumer.poll(min(left, 1.0))
            if msg is None:
                continue
            if msg.error():
                sys.exit(f"read_cloudevent: error reading {topic}[{partition}]: {msg.error()}")
            if msg.offset() != offset:
                sys.exit(f"read_cloudevent: expected offset {offset}, got {msg.offset()}")
            return msg
        sys.exit(f"read_cloudevent: no record at {topic}[{partition}]@{offset} "
                 f"from {bootstrap} within {timeout:g} s")
    finally:
        consumer.close()


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    bootstrap, topic = sys.argv[1], sys.argv[2]
    partition, offset = int(sys.argv[3]), int(sys.argv[4])
    timeout = float(sys.argv[5]) if len(sys.argv) == 6 else 30.0

    msg = read_one(bootstrap, topic, partition, offset, timeout)
    headers = {name: value for name, value in (msg.headers() or []) if value is not None}
    event = from_binary(KafkaMessage(headers=headers, key=msg.key(), value=msg.value()))

    attributes = event.get_attributes()
    print(json.dumps({
        **{name: attributes.get(name) for name in sorted(CORE)},
        "extensions": {name: value for name, value in attributes.items()
                       if name not in CORE and name != "partitionkey"},
        "data": event.data,
        "key": msg.key().decode() if msg.key() is not None else None,
        "headers": {name: value.decode(errors="replace") for name, value in headers.items()},
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
