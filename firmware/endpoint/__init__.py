"""Endpoints: every decision of the client and the server, with no IO (see actions.py, server.py, client.py)."""
