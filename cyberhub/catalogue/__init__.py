"""Cases and their versions, provably fair draws and seed pairs, the catalogue
cache and public stats.
"""
