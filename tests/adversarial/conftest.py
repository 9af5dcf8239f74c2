"""The adversarial suite shares the integration tier's broker, stack and endpoint."""

from tests.integration.conftest import endpoint, ready_stack, stack

__all__ = ["endpoint", "ready_stack", "stack"]
