"""The application layer.

Requests, responses, routing, the 60/62/61 access decision, the dispatcher that
runs a request through them, static files (and the safe resolution of request
paths to files, :mod:`~hospes.app.resolve`), and the confirmations that make a
change answer a prompt the server issued (:mod:`~hospes.app.confirm`).
"""
