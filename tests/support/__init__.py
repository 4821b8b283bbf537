"""Test support shared by every area: PKI, store URLs, and a real gateway process driven over real sockets."""
