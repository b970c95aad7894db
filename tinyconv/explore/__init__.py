"""The local explorer: draw a digit in the browser and watch every layer and method answer.

:mod:`~tinyconv.explore.api` computes (one function per route, JSON in, JSON out);
:mod:`~tinyconv.explore.server` serves it and the page in ``static/`` on 127.0.0.1 only.
Start it with ``tinyconv explore``; the API is described in ``docs/explorer.md``.
"""
