"""A local single-node Apache Kafka (KRaft) from Maven Central jars."""
