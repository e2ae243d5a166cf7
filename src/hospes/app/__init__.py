"""The application layer.

Requests, responses, routing, the 60/62/61 access decision, the dispatcher that
runs a request through them, and static files.
"""
