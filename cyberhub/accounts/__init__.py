"""Players and admins: registration, login, tokens, password hashing,
suspension.
"""
