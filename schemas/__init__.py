"""The HTTP contract: request and response Structs of the native API."""
