"""Case battles: 2-4 seats (or two teams of two) open the same cases round by
round; the best haul takes every item. The server seed is committed before
anyone joins; every draw is stored before the start is announced.
"""
