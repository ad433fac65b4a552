"""
Several nodes as one chat over Redis: the hub, the account store and the
connection they share.
"""
