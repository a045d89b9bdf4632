"""Signage: one HTML5 page per shelf-edge display, offers pushed by SSE over a scheduled loop.

``config`` (the ``[signage]`` section), ``playlist`` (pure rules: which loop item is due, which offers
are shown where and for how long), ``hub`` (the in-memory SSE ring), ``proof`` (proof-of-play log),
``web`` (the Flask app), ``service`` (``main(ctx)``: bus → hub → SSE, the WSGI server, health).
"""
