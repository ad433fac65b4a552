"""
What the chat keeps on disk: accounts (C{users.json}) and their Argon2id
password hashes.
"""
