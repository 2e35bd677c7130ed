"""Upgrades: stake owned items for a chance at a more valuable one, drawn
with the player's seed pair and the openings' nonce stream.
"""
