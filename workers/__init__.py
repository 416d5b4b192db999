"""The CPU engine: pure primitives shared by both sides, and (later) the worker processes.

Never imports ``uploader`` or asyncio (ARCHITECTURE.md, dependency direction).
"""

__all__: list[str] = []
