"""Who may connect, and how often.

Remote addresses and their groups, address sets, rate limits and blocks, the
limits a server applies, and the clock they all read: pure bookkeeping, shared
by the server's admission and the application's pages.
"""
