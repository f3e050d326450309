"""Event streams into the one ingestion path (RabbitMQ today; Kafka and NATS later)."""

from recsys.stream.rabbitmq import ConsumerStats, RabbitConsumer, derived_event_id

__all__ = ["ConsumerStats", "RabbitConsumer", "derived_event_id"]
