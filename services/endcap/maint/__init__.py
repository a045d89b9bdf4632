"""The maintenance page: what a store technician sees and may do, over TLS, behind a password."""
