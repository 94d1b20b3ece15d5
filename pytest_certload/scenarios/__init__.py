"""certctl's load scenarios as iteration builders: what each iteration sends, and nothing else.

The timing, rates and thresholds live in the tests' ``certload`` markers (tests/api, tests/connector,
tests/scale), so that a k6 scenario block ports line by line and ``--certload-list`` can print them.
Each builder takes the running :class:`~pytest_certload.stack.Stack` and returns an
``async def iteration(ctx)`` for the engine.
"""
