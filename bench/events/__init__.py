"""Event-bus throughput: KafkaEventBus against raw aiokafka with the same safe settings."""
