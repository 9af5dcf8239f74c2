"""How the real parts start: the local Kafka node (deploy/kafka)."""
