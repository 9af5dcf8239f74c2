"""The processor: applies the domain core to the commands topic (faust-streaming)."""
