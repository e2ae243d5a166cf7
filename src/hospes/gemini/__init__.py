"""What server and client share, without I/O.

URLs, request and response lines, fingerprints, certificates as identities, and
the escaping of untrusted text.
"""
