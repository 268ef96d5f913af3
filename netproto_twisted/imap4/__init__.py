"""IMAP4rev1/rev2: server and client over the shared Maildir++ store."""
